import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Whether the module at `moduleUrl` is the script node was started with. The same check as
 * shared/src/lifecycle/is-main.ts, for the deploy scripts, which run without a build: both paths
 * resolved, so a symlinked checkout or a path with a space still runs the command instead of
 * silently doing nothing.
 */
export function isMain(moduleUrl, script = process.argv[1]) {
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
