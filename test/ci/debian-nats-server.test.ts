import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { killOnExit, repoRoot } from "@orderflow/shared/testing";

/** A mirror that answers every request with `status`. */
async function mirror(status: number): Promise<string> {
  const server: Server = createServer((_req, res) => res.writeHead(status).end());
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  onTestFinished(() => new Promise<void>((done) => server.close(() => done())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian`;
}

function fetchSuite(suite: string, mirrorUrl: string) {
  return new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn("bash", [join(repoRoot, "scripts", "ci", "debian-nats-server.sh"), suite], {
      env: { ...process.env, DEBIAN_MIRROR: mirrorUrl },
      stdio: ["ignore", "ignore", "pipe"],
    });
    // A test that times out does not leave the script (and its curl) running.
    onTestFinished(() => void (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")));
    killOnExit(child);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("exit", (code) => resolve({ code, stderr }));
  });
}

// CI skips the newer-broker suites on exit 75 (the archive out of reach) and fails on 1: a wrong
// suite name or mirror path must not pass for a network outage.
describe("scripts/ci/debian-nats-server.sh", () => {
  it("fails (exit 1) on a 404, naming what is missing", async () => {
    const r = await fetchSuite("trixiee", await mirror(404));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/trixiee's InRelease is not at .*\/dists\/trixiee\/InRelease \(HTTP 404\)/);
  });

  it("reports a server error as unreachable (exit 75)", async () => {
    const r = await fetchSuite("trixie", await mirror(503));
    expect(r.code).toBe(75);
    expect(r.stderr).toContain("(HTTP 503)");
  });
});
