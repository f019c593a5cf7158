import { closeSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { randomHex } from "../ids/index.js";
import { StartupError } from "../errors/index.js";

/** The PGlite data directory is open in another live process. */
export class DataDirectoryInUseError extends StartupError {
  override name = "DataDirectoryInUseError";
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(
      `the PGlite data directory ${dir} is in use by process ${pid}; PGlite is one process's files: stop that process first, or use Postgres ` +
        `(if no such process of ours runs, delete ${join(dir, LOCK_FILE)})`,
    );
  }
}

const LOCK_FILE = "orderflow.pid";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is just not ours to signal.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

const readPid = (file: string): number | undefined => {
  try {
    const pid = Number.parseInt(readFileSync(file, "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
};

const ignoreMissing = (fn: () => void) => {
  try {
    fn();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
};

/**
 * Claims a PGlite data directory for this process with a pid file, so a second process (a
 * replay while `npm start` runs, a second service pointed at the same directory) is refused
 * instead of corrupting the files both would write. The file appears whole or not at all (written
 * aside, then hard-linked into place, which fails if one exists), and one left by a process that
 * died is moved aside before it is replaced, so two processes starting at once cannot both take
 * it. Returns the release.
 */
export function lockDataDirectory(dir: string): () => void {
  const file = join(dir, LOCK_FILE);
  const mine = join(dir, `${LOCK_FILE}.${process.pid}.${randomHex(4)}`);
  const fd = openSync(mine, "w");
  writeSync(fd, String(process.pid));
  closeSync(fd);
  try {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        linkSync(mine, file);
        return () => {
          if (readPid(file) === process.pid) ignoreMissing(() => unlinkSync(file));
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const holder = readPid(file);
      if (holder !== undefined && holder !== process.pid && alive(holder)) throw new DataDirectoryInUseError(dir, holder);
      if (holder === undefined) continue; // removed meanwhile: try again
      // A dead holder's file: move it aside (only one process can), and check it was that one.
      const aside = join(dir, `${LOCK_FILE}.stale.${randomHex(4)}`);
      try {
        renameSync(file, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // another process moved it first
        throw err;
      }
      const moved = readPid(aside);
      if (moved !== holder) {
        // A live process's fresh file replaced the stale one in between: put it back (unless a
        // third has claimed the place meanwhile; then that one holds it).
        try {
          linkSync(aside, file);
        } catch (err) {
          if (!["EEXIST", "ENOENT"].includes((err as NodeJS.ErrnoException).code ?? "")) throw err;
        }
      }
      ignoreMissing(() => unlinkSync(aside));
    }
    throw new StartupError(`could not take the PGlite data directory ${dir}: other processes keep claiming it`);
  } finally {
    ignoreMissing(() => unlinkSync(mine));
  }
}
