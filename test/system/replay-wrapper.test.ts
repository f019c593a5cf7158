import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot, startProcess } from "@orderflow/shared/testing";

const replay = (args: string[], env: Record<string, string>) =>
  startProcess(join(repoRoot, "scripts", "replay.ts"), args, { DATABASE_URL: "postgres://127.0.0.1:1/nowhere", ...env }, { cwd: repoRoot, nodeArgs: ["--import", "tsx"] });

describe("npm run replay", () => {
  // npm takes a flag placed before `--` for itself and only warns: the replay would run without
  // it (a full rebuild, which resets the projection, instead of an incremental one).
  it.each([
    ["--from-seq", "npm_config_from_seq", "1"],
    ["--from-time", "npm_config_from_time", "2026-01-01T00:00:00Z"],
    ["--dry-run", "npm_config_dry_run", "true"],
  ])("refuses to run when npm took %s (it set %s)", async (flag, variable, value) => {
    const proc = replay(["--service", "user-service"], { [variable]: value });
    expect((await proc.exitWithin(30_000)).code).toBe(2);
    expect(proc.output.join("\n")).toContain(`replay: ${flag} went to npm (before \`--\`), not to the replay; put it after, e.g. npm run replay -- --service user-service ${flag}`);
    expect(proc.output.join("\n")).toContain(`(${variable} set;`);
  });

  it("is not stopped by an npm setting exported as false or empty", async () => {
    // Past the flag check it goes on to the database, which is not there: exit 1, not 2.
    const proc = replay(["--service", "user-service"], { npm_config_force: "false", npm_config_dry_run: "" });
    expect((await proc.exitWithin(30_000)).code).toBe(1);
    expect(proc.output.join("\n")).not.toContain("went to npm");
  });

  it.each(["--help", "-h"])("prints the usage on stdout with exit 0 for %s, without --service, listing the services", (flag) => {
    const help = spawnSync(process.execPath, ["--import", "tsx", join(repoRoot, "scripts", "replay.ts"), flag], { cwd: repoRoot, encoding: "utf8", timeout: 30_000 });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm run replay -- --service user-service\|order-service\|event-log \[--from-seq N/);
    expect(help.stdout).toContain("130 interrupted");
    expect(help.stderr).toBe("");
  });
});
