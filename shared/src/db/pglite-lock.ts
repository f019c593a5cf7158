import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { StartupError } from "../errors/index.js";

/** The PGlite data directory is open in another live process. */
export class DataDirectoryInUseError extends StartupError {
  override name = "DataDirectoryInUseError";
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(`the PGlite data directory ${dir} is in use by process ${pid}; PGlite is one process's files: stop that process first, or use Postgres`);
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is just not ours to signal.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/**
 * Claims a PGlite data directory for this process with a pid file, so a second process (a
 * replay while `npm start` runs, a second service pointed at the same directory) is refused
 * instead of corrupting the files both would write. A file left by a process that died is taken
 * over. Returns the release.
 */
export function lockDataDirectory(dir: string): () => void {
  const file = join(dir, "orderflow.pid");
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(file, "utf8").trim() === String(process.pid)) unlinkSync(file);
        } catch {
          // Gone already: nothing to release.
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw err;
    }
    let holder = NaN;
    try {
      holder = Number.parseInt(readFileSync(file, "utf8"), 10);
    } catch {
      // Unreadable or removed meanwhile: treated as stale below.
    }
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) throw new DataDirectoryInUseError(dir, holder);
    unlinkSync(file);
  }
}
