import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "./database.js";
import { DataDirectoryInUseError } from "./pglite-lock.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const dataDir = () => {
  const d = mkdtempSync(join(tmpdir(), "of-pglite-lock-"));
  dirs.push(d);
  return d;
};

describe("PGlite data directory lock", () => {
  it("refuses a second process while the directory is open, and lets it in once closed", async () => {
    const dir = dataDir();
    const first = await openDatabase(`pglite://${dir}`);
    try {
      // Another process: the same check a replay or a second `npm start` makes.
      const other = spawnSync(process.execPath, ["--input-type=module", "-e", `
        const { lockDataDirectory } = await import(${JSON.stringify(new URL("../../dist/db/pglite-lock.js", import.meta.url).pathname)});
        try { lockDataDirectory(${JSON.stringify(dir)}); console.log("locked"); } catch (err) { console.log(err.name + ": " + err.message); process.exitCode = 3; }
      `], { encoding: "utf8" });
      expect(other.status).toBe(3);
      expect(other.stdout).toContain(`DataDirectoryInUseError: the PGlite data directory ${dir} is in use by process ${process.pid}`);
    } finally {
      await first.close();
    }
    expect(existsSync(join(dir, "orderflow.pid"))).toBe(false);
    const again = await openDatabase(`pglite://${dir}`);
    await again.close();
  });

  it("says so before it creates a database in a new directory (seconds of silence otherwise), and not when it opens one", async () => {
    const dir = join(dataDir(), "new");
    const told: string[] = [];
    await (await openDatabase(`pglite://${dir}`, { onCreatingPglite: (d) => told.push(d) })).close();
    expect(told).toEqual([dir]);
    await (await openDatabase(`pglite://${dir}`, { onCreatingPglite: (d) => told.push(d) })).close();
    expect(told).toEqual([dir]);
  });

  it("takes over the file a dead process left, and refuses a live holder's", async () => {
    const dir = dataDir();
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    writeFileSync(join(dir, "orderflow.pid"), dead.stdout);
    const db = await openDatabase(`pglite://${dir}`);
    await db.close();

    writeFileSync(join(dir, "orderflow.pid"), "1"); // init: alive, not ours
    await expect(openDatabase(`pglite://${dir}`)).rejects.toBeInstanceOf(DataDirectoryInUseError);
  });

  it("lets only one of two processes starting at once take it, fresh or over a dead holder's file", async () => {
    const lockModule = JSON.stringify(new URL("../../dist/db/pglite-lock.js", import.meta.url).pathname);
    // A winner holds the lock until the test has both outcomes (it closes the winner's stdin then),
    // however slowly the other one starts.
    const contender = (dir: string) => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", `
        const { lockDataDirectory } = await import(${lockModule});
        try { lockDataDirectory(${JSON.stringify(dir)}); console.log("locked"); process.stdin.resume(); await new Promise((r) => process.stdin.once("end", r)); }
        catch (err) { console.log(err.name); }
      `], { stdio: ["pipe", "pipe", "inherit"] });
      child.stdin.on("error", () => {}); // the loser may be gone before its stdin is closed
      const exited = new Promise((done) => child.once("exit", done));
      const outcome = new Promise<string>((resolve) => {
        let out = "";
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("\n")) resolve(out.trim());
        });
        child.once("exit", () => resolve(out.trim()));
      });
      return { outcome, release: () => (child.stdin.end(), exited) };
    };
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout;
    for (const stale of [false, true]) {
      for (let round = 0; round < 8; round++) {
        const dir = dataDir();
        if (stale) writeFileSync(join(dir, "orderflow.pid"), dead);
        const both = [contender(dir), contender(dir)];
        const outcomes = await Promise.all(both.map((c) => c.outcome));
        await Promise.all(both.map((c) => c.release()));
        expect(outcomes.sort(), `stale ${stale}, round ${round}`).toEqual(["DataDirectoryInUseError", "locked"]);
      }
    }
  });
});
