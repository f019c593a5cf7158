/**
 * The flags npm took for itself: `npm run x --flag -- …` sets npm_config_flag and only warns, so
 * the script never sees it. Only a value npm set from its command line counts, not an exported
 * "" or "false". Returns them as `--flag`, with the variable that says so.
 */
export function flagsNpmTook(flags: readonly string[], env: Record<string, string | undefined> = process.env): { flag: string; variable: string }[] {
  return flags
    .map((f) => ({ flag: `--${f}`, variable: `npm_config_${f.replace(/-/g, "_")}` }))
    .filter(({ variable }) => !["", "false", undefined].includes(env[variable]));
}
