/**
 * The first flag of `flags` given more than once, as a sentence; undefined when none is.
 * node:util parseArgs keeps the last of a repeated flag: `--from 5 --from 9` would act on 9
 * without a word, when the operator may have meant either. Needs parseArgs' `tokens: true`.
 */
export function repeatedFlag(tokens: readonly { kind: string; name?: string }[], flags: readonly string[]): string | undefined {
  for (const flag of flags) {
    const n = tokens.filter((t) => t.kind === "option" && t.name === flag).length;
    if (n > 1) return `--${flag} given ${n} times; give it once`;
  }
  return undefined;
}
