import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execFileSync, spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { connectTestNats, deleteNamespace, freePort, repoRoot, startProcess, testNatsUrl, uniqueNamespace, waitFor, waitReady } from "@orderflow/shared/testing";
import { localServices } from "../../scripts/local-services.js";
import { registerOk, waitForCount, waitForWelcome } from "./helpers.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** `npm start` (scripts/start.ts) in a process group of its own, with its own free ports. */
async function npmStart(env: Record<string, string>) {
  const ports = { USER_PORT: String(await freePort()), ORDER_PORT: String(await freePort()), EVENTLOG_PORT: String(await freePort()) };
  const proc = startProcess(join(repoRoot, "scripts", "start.ts"), [], { ...ports, NATS_NAMESPACE: uniqueNamespace(), ...env }, { cwd: repoRoot, detached: true, nodeArgs: ["--import", "tsx"] });
  // Ctrl-C is what makes start.ts stop the services and nats-server it started; if it hangs,
  // exitWithin kills the whole group rather than leave them behind.
  onTestFinished(async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill("SIGINT");
      await proc.exitWithin(30_000);
    }
  });
  return proc;
}

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
    const proc = await npmStart({
      ...env,
      // Nothing listens there, so start.ts runs nats-server, on that port: a bare host:port as
      // the services take it (new URL would read "127.0.0.1:" as a scheme).
      NATS_URL: `127.0.0.1:${natsPort}`,
      ORDERFLOW_DATA_DIR: dataDir,
    });
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
    const exit = await proc.exitWithin(30_000);
    expect(exit.code).toBe(0);
    expect(proc.output.some((l) => l.includes("[orderflow] stopped"))).toBe(true);
  }, 240_000); // three readiness waits of up to 60 s each on a slow host

  it("through npm itself (`npm start`): a SIGTERM to npm stops every service, none is left running", async () => {
    // npm runs the script under `sh -c`, which does not pass a SIGTERM on: the script's `exec`
    // makes start.ts the shell's process, so npm's signal reaches it. exitWithin fails the test
    // if npm exits while anything it started (the services) still runs.
    const npmCli = process.env.npm_execpath?.endsWith("npm-cli.js") ? process.env.npm_execpath : join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "bin", "npm-cli.js");
    const dataDir = mkdtempSync(join(tmpdir(), "of-start-npm-"));
    dirs.push(dataDir);
    const ports: Record<string, string> = {};
    const namespace = uniqueNamespace();
    // The services create their streams on the shared server: removed once they are stopped
    // (registered first, so it runs after the clean-up below).
    onTestFinished(async () => {
      const nc = await connectTestNats();
      try {
        await deleteNamespace(nc, namespace);
      } finally {
        await nc.close();
      }
    });
    const env: Record<string, string> = { NATS_URL: testNatsUrl(), NATS_NAMESPACE: namespace, ORDERFLOW_DATA_DIR: dataDir, METRICS_PORT: "" };
    for (const svc of localServices(repoRoot, {})) {
      ports[svc.name] = String(await freePort());
      env[`${svc.envPrefix}_PORT`] = ports[svc.name]!;
      env[`${svc.envPrefix}_DATABASE_URL`] = "";
    }
    const proc = startProcess(npmCli, ["start"], env, { cwd: repoRoot, detached: true });
    onTestFinished(async () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) {
        proc.child.kill("SIGKILL");
        await proc.exitWithin(5_000).catch(() => {});
      }
    });
    for (const port of Object.values(ports)) await waitReady(`http://127.0.0.1:${port}`, proc, 120_000);
    proc.child.kill("SIGTERM"); // npm alone, as a process manager or `kill <npm's pid>` would
    await proc.exitWithin(30_000);
    expect(proc.output.some((l) => l.includes("[orderflow] stopped"))).toBe(true);
  }, 240_000); // npm start builds first

  // A development runner: a part that dies stops the whole system (exit 1) rather than leave it
  // running with that part missing, whether the part is a service or the nats-server it started.
  for (const victim of ["order-service", "nats-server"]) {
    it(`stops everything and exits 1 when its ${victim} is killed (kill -9), instead of waiting for it for ever`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "of-start-kill-"));
      dirs.push(dataDir);
      const env: Record<string, string> = { NATS_URL: `127.0.0.1:${await freePort()}`, ORDERFLOW_DATA_DIR: dataDir, METRICS_PORT: "" };
      const ports: string[] = [];
      for (const svc of localServices(repoRoot, {})) {
        ports.push(String(await freePort()));
        env[`${svc.envPrefix}_PORT`] = ports.at(-1)!;
        env[`${svc.envPrefix}_DATABASE_URL`] = "";
      }
      const proc = await npmStart(env);
      for (const port of ports) await waitReady(`http://127.0.0.1:${port}`, proc, 60_000);
      // What start.ts runs: its children, by command line.
      const children = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(proc.child.pid)], { encoding: "utf8" })
        .split("\n")
        .map((l) => /^\s*(\d+)\s+(.*)$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => ({ pid: Number(m[1]), args: m[2]! }))
        .filter((c) => c.args.includes("nats-server") || /dist\/main\.js/.test(c.args)); // not tsx's esbuild
      expect(children).toHaveLength(ports.length + 1); // the services and nats-server
      const target = children.find((c) => (victim === "nats-server" ? c.args.includes("nats-server") : c.args.includes(join("services", victim, "dist", "main.js"))))!;
      process.kill(target.pid, "SIGKILL");
      const exit = await proc.exitWithin(30_000);
      expect(exit.code).toBe(1);
      expect(proc.output).toContain(`[orderflow] ${victim} exited (SIGKILL); stopping the rest`);
      expect(proc.output).toContain("[orderflow] stopped");
      // Nothing it started is left running.
      const alive = children.filter((c) => {
        try {
          process.kill(c.pid, 0);
          return true;
        } catch {
          return false;
        }
      });
      expect(alive).toEqual([]);
    }, 120_000);
  }

  it("exits non-zero with a clear message when NATS is unreachable and nats-server is not installed", async () => {
    const port = await freePort();
    const proc = await npmStart({ NATS_SERVER_BIN: "/nonexistent/nats-server", NATS_URL: `nats://127.0.0.1:${port}` });
    expect((await proc.exitWithin(30_000)).code).toBe(1);
    const stderr = proc.output.join("\n");
    expect(stderr).toMatch(/NATS is not reachable .* NATS_SERVER_BIN \(\/nonexistent\/nats-server\) does not exist/);
    expect(stderr).toMatch(/NATS_URL/);
  });

  it("says so when the NATS it finds answers without JetStream (a nats-server started without -js)", async () => {
    const port = await freePort();
    const bare = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
    onTestFinished(() => new Promise<void>((done) => (bare.exitCode !== null ? done() : (bare.once("exit", () => done()), bare.kill("SIGKILL")))));
    await waitFor(async () => (await connectTestNats(`nats://127.0.0.1:${port}`).then((nc) => nc.close()).then(() => true, () => false)) || undefined, { what: "a NATS without JetStream" });
    const dataDir = mkdtempSync(join(tmpdir(), "of-start-nojs-"));
    dirs.push(dataDir);
    // Each service on its PGlite default under dataDir, whatever *_DATABASE_URL this shell has.
    const dbs = Object.fromEntries(localServices(repoRoot, {}).map((svc) => [`${svc.envPrefix}_DATABASE_URL`, ""]));
    const proc = await npmStart({ ...dbs, NATS_URL: `nats://127.0.0.1:${port}`, ORDERFLOW_DATA_DIR: dataDir });
    await waitFor(() => proc.output.some((l) => l.includes(`[orderflow] NATS at nats://127.0.0.1:${port} answers, but JetStream does not (`) && l.includes("Is nats-server running with -js (JetStream)?")), {
      what: "the warning about JetStream",
      abortIf: () => (proc.child.exitCode !== null ? `npm start exited: ${proc.output.slice(-10).join("\n")}` : undefined),
    });
  });

  it("does not stand in for a list of NATS servers none of which answers, and says so instead of crashing", async () => {
    const [a, b] = [await freePort(), await freePort()];
    const proc = await npmStart({ NATS_URL: `nats://127.0.0.1:${a}, 127.0.0.1:${b}` });
    expect((await proc.exitWithin(30_000)).code).toBe(1);
    const stderr = proc.output.join("\n");
    expect(stderr).toContain("runs a nats-server of its own only for a single address on this machine");
    expect(stderr).not.toMatch(/TypeError|^\s+at /m);
  });
});

describe("npm start refuses a bad setting before starting anything", () => {
  /** Every service on a free port, so only the setting under test can be wrong. */
  async function refused(env: Record<string, string>) {
    const proc = await npmStart(env);
    const exit = await proc.exitWithin(30_000);
    const output = proc.output.join("\n");
    expect(output).not.toMatch(/^\s+at /m);
    expect(output).not.toContain("[orderflow] starting");
    return { code: exit.code, output };
  }

  it("METRICS_PORT that is not a port, or whose range would run past 65535, exits 2 naming it", async () => {
    const count = localServices(repoRoot, {}).length;
    for (const bad of ["abc", "-1", "9464x", "70000", String(65535 - count + 2)]) {
      const { code, output } = await refused({ METRICS_PORT: bad, NATS_URL: testNatsUrl() });
      expect(code, bad).toBe(2);
      expect(output).toContain(`METRICS_PORT must be a port number from 1 to ${65535 - count + 1} (npm start gives its ${count} services one each, from it upwards), or 0 for no metrics; got "${bad}"`);
    }
  });

  it("METRICS_PORT whose range covers a service's port exits 2 naming both, instead of a service blaming its PORT", async () => {
    const orderPort = await freePort();
    const { code, output } = await refused({ ORDER_PORT: String(orderPort), METRICS_PORT: String(orderPort - 1), NATS_URL: testNatsUrl() });
    expect(code).toBe(2);
    expect(output).toMatch(new RegExp(`METRICS_PORT=${orderPort - 1} would give \\S+ port ${orderPort} for metrics, which is order-service's \\(ORDER_PORT\\)`));
  });

  it("a metrics port another process holds exits 1 naming METRICS_PORT", async () => {
    const taken = createServer();
    await new Promise<void>((done) => taken.listen(0, "0.0.0.0", done));
    onTestFinished(() => new Promise<void>((done) => taken.close(() => done())));
    const port = (taken.address() as AddressInfo).port;
    const { code, output } = await refused({ METRICS_PORT: String(port), NATS_URL: testNatsUrl() });
    expect(code).toBe(1);
    expect(output).toContain(`its metrics port ${port} (METRICS_PORT=${port} + 0) is already in use by another process; set METRICS_PORT to a base with`);
  });

  it("ORDERFLOW_DATA_DIR naming a file exits 2 with a sentence, not each service's ENOTDIR", async () => {
    const dir = mkdtempSync(join(tmpdir(), "of-start-file-"));
    dirs.push(dir);
    const file = join(dir, "not-a-dir");
    writeFileSync(file, "");
    const dbs = Object.fromEntries(localServices(repoRoot, {}).map((svc) => [`${svc.envPrefix}_DATABASE_URL`, ""]));
    const { code, output } = await refused({ ...dbs, ORDERFLOW_DATA_DIR: file, NATS_URL: testNatsUrl() });
    expect(code).toBe(2);
    expect(output).toContain(`ORDERFLOW_DATA_DIR (${file}) is a file, not a directory`);
  });

  it("NATS_SERVER_BIN naming a file that cannot be run exits 1 with a sentence", async () => {
    const dir = mkdtempSync(join(tmpdir(), "of-start-bin-"));
    dirs.push(dir);
    const notExecutable = join(dir, "nats-server");
    writeFileSync(notExecutable, "#!/bin/sh\n", { mode: 0o644 });
    for (const bin of [notExecutable, dir]) {
      const { code, output } = await refused({ NATS_SERVER_BIN: bin, NATS_URL: `nats://127.0.0.1:${await freePort()}` });
      expect(code, bin).toBe(1);
      expect(output).toContain(`NATS_SERVER_BIN (${bin}) is not an executable file`);
    }
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
      const proc = await npmStart({ USER_PORT: String(port), NATS_URL: testNatsUrl(), ORDERFLOW_DATA_DIR: dataDir });
      expect((await proc.exitWithin(30_000)).code).toBe(1);
      expect(proc.output.join("\n")).toContain(`[orderflow] user-service: port ${port} is already in use by another process; set USER_PORT to a free one`);
    } finally {
      await new Promise((done) => taken.close(done));
    }
  });
});

describe("configuration errors", () => {
  it("a service with a bad environment exits non-zero with one line naming the variable", async () => {
    const proc = startProcess(join(repoRoot, "services", "user-service", "dist", "main.js"), [], { DATABASE_URL: "mysql://nope", PORT: "99999" });
    const exit = await proc.exitWithin(30_000);
    expect(exit.code).toBe(2);
    const line = proc.output.find((l) => l.includes("invalid configuration"));
    expect(line).toMatch(/DATABASE_URL/);
    expect(line).toMatch(/PORT/);
  });

  it("a service whose port is taken, whose PGlite directory another process holds or cannot be created, exits 1 with a sentence, not a stack", async () => {
    const dir = mkdtempSync(join(tmpdir(), "of-start-held-"));
    dirs.push(dir);
    const port = await freePort();
    const env = { DATABASE_URL: `pglite://${join(dir, "users")}`, PORT: String(port), NATS_URL: "nats://127.0.0.1:1", LOG_LEVEL: "warn" };
    const first = startProcess(join(repoRoot, "services", "user-service", "dist", "main.js"), [], env);
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok, { what: "the first service listening" });
      const samePort = startProcess(join(repoRoot, "services", "user-service", "dist", "main.js"), [], { ...env, DATABASE_URL: `pglite://${join(dir, "other")}` });
      expect((await samePort.exitWithin(30_000)).code).toBe(1);
      expect(samePort.output.join("\n")).toContain(`user-service: failed to start: port ${port} on 0.0.0.0 is already in use by another process; set PORT to a free one`);
      const sameDir = startProcess(join(repoRoot, "services", "user-service", "dist", "main.js"), [], { ...env, PORT: String(await freePort()) });
      expect((await sameDir.exitWithin(30_000)).code).toBe(1);
      expect(sameDir.output.join("\n")).toContain(`user-service: failed to start: the PGlite data directory ${join(dir, "users")} is in use by process ${first.child.pid}`);
      // A file where PGlite's directory should be.
      const underFile = startProcess(join(repoRoot, "services", "user-service", "dist", "main.js"), [], { ...env, PORT: String(await freePort()), DATABASE_URL: `pglite://${join(dir, "users", "PG_VERSION", "db")}` });
      expect((await underFile.exitWithin(30_000)).code).toBe(1);
      expect(underFile.output.join("\n")).toContain(`user-service: failed to start: cannot create the PGlite data directory ${join(dir, "users", "PG_VERSION", "db")}: part of that path is a file, not a directory`);
      for (const p of [samePort, sameDir, underFile]) expect(p.output.join("\n")).not.toMatch(/^\s+at /m);
    } finally {
      first.child.kill("SIGTERM");
      await first.exitWithin(30_000);
    }
  });
});
