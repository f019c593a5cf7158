import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, repoRoot, startProcess, testNatsUrl, waitFor, waitReady, type ManagedProcess } from "@orderflow/shared/testing";
import { localServices } from "../../scripts/local-services.js";
import { registerOk, waitForCount, waitForWelcome } from "./helpers.js";

const tsx = join(repoRoot, "node_modules", "tsx", "dist", "cli.mjs");
const dirs: string[] = [];
let started: ManagedProcess | undefined;
afterAll(async () => {
  // Ctrl-C is what makes start.ts stop the services and nats-server it started; a SIGKILL on
  // exit (the test helpers' last resort) would leave those behind.
  if (started && started.child.exitCode === null && started.child.signalCode === null) {
    started.child.kill("SIGINT");
    await started.exited;
  }
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

describe("npm start", () => {
  it("starts its own nats-server and embedded PGlite, serves the README flow (event log included), and stops cleanly on Ctrl-C", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "of-start-"));
    dirs.push(dataDir);
    // Every service npm start would run gets a free port and its PGlite default.
    const ports: Record<string, number> = {};
    const env: Record<string, string> = {};
    for (const svc of localServices(repoRoot, {})) {
      ports[svc.name] = await freePort();
      env[`${svc.envPrefix}_PORT`] = String(ports[svc.name]);
      env[`${svc.envPrefix}_DATABASE_URL`] = "";
    }
    const [userPort, orderPort, eventLogPort, natsPort] = [ports["user-service"], ports["order-service"], ports["event-log"], await freePort()];
    const proc = startProcess(tsx, [join(repoRoot, "scripts", "start.ts")], {
      ...env,
      NATS_URL: `nats://127.0.0.1:${natsPort}`, // nothing listens there, so start.ts runs nats-server
      ORDERFLOW_DATA_DIR: dataDir,
    }, { cwd: repoRoot });
    started = proc;
    try {
      const userUrl = `http://127.0.0.1:${userPort}`;
      const orderUrl = `http://127.0.0.1:${orderPort}`;
      await waitReady(userUrl, proc, 60_000);
      await waitReady(orderUrl, proc, 60_000);
      const eventLogUrl = `http://127.0.0.1:${eventLogPort}`;
      await waitReady(eventLogUrl, proc, 60_000);
      expect(proc.output.some((l) => l.startsWith("[orderflow] starting") && l.includes("nats-server"))).toBe(true);
      expect(proc.output.some((l) => l.startsWith("[user-service] "))).toBe(true);
      expect(proc.output.some((l) => l.startsWith("[order-service] "))).toBe(true);

      const user = await registerOk(userUrl);
      await waitForWelcome(orderUrl, user.id);
      await waitForCount(userUrl, user.id, 1);
      // The event log saw the user's whole history: registration, then the welcome order.
      await waitFor(async () => {
        const res = await fetch(`${eventLogUrl}/events?entity=${user.id}`);
        const page = (await res.json()) as { items: { type: string }[] };
        const types = page.items.map((e) => e.type);
        return types.includes("io.orderflow.user.registered.v1") && types.includes("io.orderflow.order.created.v1");
      }, { what: "the user's events in the event log" });
    } finally {
      proc.child.kill("SIGINT");
    }
    const exit = await proc.exited;
    expect(exit.code).toBe(0);
    expect(proc.output.some((l) => l.includes("[orderflow] stopped"))).toBe(true);
  }, 240_000); // three readiness waits of up to 60 s each on a slow host

  it("exits non-zero with a clear message when NATS is unreachable and nats-server is not installed", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [tsx, join(repoRoot, "scripts", "start.ts")], {
      // Ports of its own: the default ones may be taken by an `npm start` on this machine.
      env: { ...process.env, NATS_SERVER_BIN: "/nonexistent/nats-server", NATS_URL: `nats://127.0.0.1:${port}`, USER_PORT: String(await freePort()), ORDER_PORT: String(await freePort()), EVENTLOG_PORT: String(await freePort()) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((done) => child.once("exit", (c) => done(c)));
    expect(code).toBe(1);
    expect(stderr).toMatch(/NATS is not reachable .* NATS_SERVER_BIN \(\/nonexistent\/nats-server\) does not exist/);
    expect(stderr).toMatch(/NATS_URL/);
  });
});

describe("npm start with a port taken", () => {
  it("names the variable that moves it (USER_PORT), not the PORT it sets itself, and exits 1", async () => {
    const taken = createServer();
    await new Promise<void>((done) => taken.listen(0, "0.0.0.0", done));
    const port = (taken.address() as AddressInfo).port;
    const dataDir = mkdtempSync(join(tmpdir(), "of-start-port-"));
    dirs.push(dataDir);
    try {
      const child = spawn(process.execPath, [tsx, join(repoRoot, "scripts", "start.ts")], {
        env: { ...process.env, USER_PORT: String(port), NATS_URL: testNatsUrl(), ORDERFLOW_DATA_DIR: dataDir },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((done) => child.once("exit", (c) => done(c)));
      expect(code).toBe(1);
      expect(stderr).toContain(`[orderflow] user-service: port ${port} is already in use by another process; set USER_PORT to a free one`);
    } finally {
      taken.close();
    }
  });
});

describe("configuration errors", () => {
  it("a service with a bad environment exits non-zero with one line naming the variable", async () => {
    const proc = startProcess(join(repoRoot, "services", "user-service", "dist", "main.js"), [], { DATABASE_URL: "mysql://nope", PORT: "99999" });
    const exit = await proc.exited;
    expect(exit.code).toBe(2);
    const line = proc.output.find((l) => l.includes("invalid configuration"));
    expect(line).toMatch(/DATABASE_URL/);
    expect(line).toMatch(/PORT/);
  });

  it("a service whose port is taken, or whose PGlite directory another process holds, exits 1 with a sentence, not a stack", async () => {
    const dir = mkdtempSync(join(tmpdir(), "of-start-held-"));
    dirs.push(dir);
    const port = await freePort();
    const env = { DATABASE_URL: `pglite://${join(dir, "users")}`, PORT: String(port), NATS_URL: "nats://127.0.0.1:1", LOG_LEVEL: "warn" };
    const first = startProcess(join(repoRoot, "services", "user-service", "dist", "main.js"), [], env);
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok, { what: "the first service listening" });
      const samePort = startProcess(join(repoRoot, "services", "user-service", "dist", "main.js"), [], { ...env, DATABASE_URL: `pglite://${join(dir, "other")}` });
      expect((await samePort.exited).code).toBe(1);
      expect(samePort.output.join("\n")).toContain(`user-service: failed to start: port ${port} on 0.0.0.0 is already in use by another process; set PORT to a free one`);
      const sameDir = startProcess(join(repoRoot, "services", "user-service", "dist", "main.js"), [], { ...env, PORT: String(await freePort()) });
      expect((await sameDir.exited).code).toBe(1);
      expect(sameDir.output.join("\n")).toContain(`user-service: failed to start: the PGlite data directory ${join(dir, "users")} is in use by process ${first.child.pid}`);
      for (const p of [samePort, sameDir]) expect(p.output.join("\n")).not.toMatch(/^\s+at /m);
    } finally {
      first.child.kill("SIGTERM");
      await first.exited;
    }
  });
});
