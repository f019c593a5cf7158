import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Whether the module at `moduleUrl` (its `import.meta.url`) is the script node was started with,
 * not a module something imported: for files that are both a library and a command. Both paths
 * are resolved, so a symlinked script, or a path with characters a URL escapes (`#`, a space),
 * still counts; comparing `import.meta.url` with `file://${argv[1]}` misses those, and the
 * command then silently does nothing.
 */
export function isMain(moduleUrl: string, script = process.argv[1]): boolean {
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
