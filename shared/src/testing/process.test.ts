import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { startProcess, waitReady } from "./process.js";
import { waitFor } from "./wait.js";

/** Running, as opposed to gone or a zombie nobody reaped yet (PID 1 in a container may not). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

/** A leader that starts a long-lived child in its group, prints its pid, then exits (0) with or without stopping it. */
function leader(stopChild: boolean) {
  const code = `const c = require("node:child_process").spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    console.log(c.pid);
    ${stopChild ? `c.once("exit", () => process.exit(0)); c.kill();` : "process.exit(0);"}`;
  return startProcess("-e", [code], {}, { detached: true });
}

describe("startProcess with detached", () => {
  it("exitWithin fails when the leader exits but leaves a process of its group running, and kills that process", async () => {
    const proc = leader(false);
    await expect(proc.exitWithin(2_000)).rejects.toThrow(/exited \(0\) but left processes of its group running, now killed/);
    const orphan = Number(await waitFor(async () => proc.output[0], { what: "the child's pid" }));
    await waitFor(async () => (running(orphan) ? undefined : true), { what: `the left-over process ${orphan} to be killed` });
  });

  it("exitWithin gives the exit when the leader stopped what it started", async () => {
    const proc = leader(true);
    expect(await proc.exitWithin(10_000)).toEqual({ code: 0, signal: null });
    expect(running(Number(await waitFor(async () => proc.output[0], { what: "the child's pid" })))).toBe(false);
  });
});

describe("waitReady", () => {
  it("says, when it times out, what /readyz last answered and what the process last printed", async () => {
    const code = `const s = require("node:http").createServer((_, res) => { res.writeHead(503).end('{"status":"not ready","checks":{"nats":"no meta leader"}}'); });
      s.listen(0, "127.0.0.1", () => console.log(s.address().port));`;
    const proc = startProcess("-e", [code], {});
    try {
      const port = await waitFor(async () => proc.output[0], { what: "the port" });
      await expect(waitReady(`http://127.0.0.1:${port}`, proc, 1500)).rejects.toThrow(/^timed out after 1500 ms waiting for .*\/readyz.*; last answer 503 .*no meta leader.*\nits last output:\n\d+$/s);
    } finally {
      proc.child.kill();
    }
  });
});
