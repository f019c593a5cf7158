import { spawn } from "node:child_process";
import { describe, expect, it, onTestFinished } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { createNames } from "@orderflow/shared";
import {
  adminDatabaseUrl,
  adminSql,
  connectTestNats,
  freePort,
  postgresRelay,
  startOwnNatsServer,
  startSystem,
  waitFor,
  waitReady,
  type OwnNatsServer,
  type TestSystem,
} from "@orderflow/shared/testing";
import { registerOk, waitForCount, waitForWelcome } from "../system/helpers.js";
import { checkExactlyOnce, readLedger, registrationLoad, report, streamMessages, waitSettled } from "./helpers.js";

const status = async (url: string, path: string) => (await fetch(`${url}${path}`).catch(() => undefined))?.status;

describe("database faults", () => {
  // Extends test/system/faults.test.ts (one registration during a short outage) to a stream of
  // registrations through a 5 s outage. MAX_DELIVER is 2, far less than the deliveries the
  // outage would cost if each event were retried on the test retry delays (200, 500, 1000 ms):
  // the runner holds its events while the database is unreachable, so none is dead-lettered.
  // Under load, terminating the backends used to crash order-service with an uncaught TypeError
  // in postgres@3.4.9 (nextWrite on a null socket; porsager/postgres#1154, #1208); the install
  // step patches it (scripts/patches/apply.mjs) and this test guards the fix.
  it("the order database refuses connections under load: readiness 503, then every event applied once", async () => {
    const sys = await startSystem({ env: { MAX_DELIVER: "2" } });
    onTestFinished(() => sys.cleanup());
    const { "user-service": users, "order-service": orders } = sys.services;
    const dbName = orders.database.name;
    const load = registrationLoad([users.url], { workers: 4 });
    let acceptedDuringOutage = 0;
    let outageMs = 0;
    try {
      await load.more(40);
      const t0 = Date.now();
      await adminSql(`alter database "${dbName}" allow_connections false`);
      onTestFinished(() => adminSql(`alter database "${dbName}" allow_connections true`));
      // Terminated again on every look: a connection that was mid-handshake when connections
      // were refused can finish after the first round and would keep the service ready.
      await waitFor(async () => {
        await adminSql(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${dbName}'`);
        return (await status(orders.url, "/readyz")) === 503;
      }, {
        what: "order-service readiness 503",
        abortIf: () => (orders.proc.child.exitCode !== null ? `order-service exited (${orders.proc.child.exitCode}):\n${orders.proc.output.slice(-15).join("\n")}` : undefined),
      });
      expect(await status(orders.url, "/healthz")).toBe(200);
      const n = load.accepted.length;
      await load.more(80);
      // The outage lasts 5 s (the scenario) and must be seen to bite: order-service found the
      // database gone while handling events, and holds them (not retried, not acked).
      const jsm = await jetstreamManager(sys.nc);
      const names = createNames(sys.namespace);
      await waitFor(
        async () => {
          const info = await jsm.consumers.info(names.stream("USERS"), names.durable("order-service"));
          const holding = orders.proc.output.some((l) => l.includes("holding events until it answers"));
          return Date.now() - t0 > 5000 && holding && info.num_ack_pending + info.num_pending > 0;
        },
        { what: "order-service holding events while its database refuses connections", timeoutMs: 30_000 },
      );
      acceptedDuringOutage = load.accepted.length - n;
      await adminSql(`alter database "${dbName}" allow_connections true`);
      outageMs = Date.now() - t0;
      await waitFor(async () => (await status(orders.url, "/readyz")) === 200, { what: "order-service ready again", timeoutMs: 30_000 });
      await load.more(40);
    } finally {
      await load.stop();
    }
    await waitSettled(sys);
    const ledger = await readLedger(sys);
    const check = checkExactlyOnce(ledger, load.accepted);
    expect(load.unexpectedStatuses()).toEqual({});
    const deadLettered = await streamMessages(sys.nc, sys.namespace, "DLQ");
    report("order DB refusing connections", {
      sent: load.sent,
      accepted: load.accepted.length,
      applied: ledger.customers.size,
      deadLettered,
      duplicates: check.duplicateWelcomes,
      acceptedDuringOutage,
      outageMs,
    });
    expect(orders.proc.child.exitCode).toBeNull();
    expect(deadLettered).toBe(0);
    expect(check).toEqual({ missingAccepted: [], unknownCustomers: [], withoutWelcome: [], duplicateWelcomes: 0, wrongCounts: 0 });
    expect([...ledger.customers].sort()).toEqual([...ledger.users].sort());
  }, 120_000);
});

describe("start-up while dependencies are down", () => {
  it("starts with NATS or Postgres unreachable: liveness 200, readiness 503, ready once they come up, no crash loop", async () => {
    const nats: OwnNatsServer = await startOwnNatsServer();
    onTestFinished(() => nats.dispose());
    const sys: TestSystem = await startSystem({ natsUrl: nats.url });
    onTestFinished(() => sys.cleanup());
    const { "user-service": users, "order-service": orders } = sys.services;
    await Promise.all([users.proc.kill("SIGKILL"), orders.proc.kill("SIGKILL")]);

    await nats.stop();
    const relayPort = await freePort();
    const relay = postgresRelay(adminDatabaseUrl(), relayPort);
    onTestFinished(() => relay.close());
    const viaRelay = new URL(orders.database.url);
    viaRelay.port = String(relayPort);

    // user-service: Postgres up, NATS down. order-service: both down (nothing listens on relayPort).
    const u = users.spawn();
    const o = orders.spawn({ DATABASE_URL: viaRelay.toString() });
    const t0 = Date.now();
    const probes: { u: [number?, number?]; o: [number?, number?] }[] = [];
    await waitFor(async () => {
      probes.push({
        u: [await status(users.url, "/healthz"), await status(users.url, "/readyz")],
        o: [await status(orders.url, "/healthz"), await status(orders.url, "/readyz")],
      });
      // Long enough for a crash loop to show: at least 3 s and 4 answered rounds of probes.
      return Date.now() - t0 > 3000 && probes.filter((p) => p.u[0] !== undefined && p.o[0] !== undefined).length >= 4;
    }, { what: "probes with dependencies down", intervalMs: 250, timeoutMs: 30_000 });
    const answered = probes.filter((p) => p.u[0] !== undefined && p.o[0] !== undefined);
    for (const p of answered) expect(p).toEqual({ u: [200, 503], o: [200, 503] });
    expect(u.child.exitCode).toBeNull();
    expect(o.child.exitCode).toBeNull();
    const readyz = (await (await fetch(`${orders.url}/readyz`)).json()) as { checks: Record<string, string> };
    expect(readyz.checks.database).not.toBe("ok");
    // Never connected to NATS: the DLQ's size is unknown, not 0 (which would resolve an alert on it).
    const dlqGauge = async () => (await (await fetch(`http://127.0.0.1:${users.metricsPort}/metrics`)).text()).split("\n").filter((l) => l.startsWith("orderflow_dlq_messages{"));
    expect(await dlqGauge()).toEqual([]);

    await nats.start();
    await waitReady(users.url, u, 30_000);
    // Asked of the NATS that just came back: the first scrapes may still go without it.
    expect(await waitFor(async () => ((g) => (g.length > 0 ? g : undefined))(await dlqGauge()), { what: "the DLQ gauge back", timeoutMs: 10_000 })).toEqual([expect.stringMatching(/ 0$/)]);
    expect(await status(orders.url, "/readyz")).toBe(503); // still no database
    await relay.listen();
    await waitReady(orders.url, o, 30_000);

    const user = await registerOk(users.url);
    await waitForWelcome(orders.url, user.id);
    await waitForCount(users.url, user.id, 1);
    // sys.nc may still be between reconnect attempts after the outage; count on a fresh connection.
    const nc = await connectTestNats(nats.url);
    const deadLettered = await streamMessages(nc, sys.namespace, "DLQ").finally(() => nc.close());
    report("start-up with dependencies down", {
      sent: 1,
      accepted: 1,
      applied: 1, // its welcome order and orderCount 1, awaited above
      deadLettered,
      probesWhileDown: answered.length,
      exits: [u, o].filter((p) => p.child.exitCode !== null).length,
    });
    expect(u.child.exitCode).toBeNull();
    expect(o.child.exitCode).toBeNull();
  }, 120_000);

  it("waits, not-ready, while NATS answers without JetStream (still starting), and is ready once it has it", async () => {
    const nats: OwnNatsServer = await startOwnNatsServer();
    onTestFinished(() => nats.dispose());
    const sys = await startSystem({ natsUrl: nats.url, services: ["user-service"] });
    onTestFinished(() => sys.cleanup());
    const users = sys.services["user-service"];
    await users.proc.kill("SIGKILL");
    await nats.stop();
    // The same port, JetStream off: connections succeed, JetStream requests get no answer.
    const bare = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(nats.port)], { stdio: "ignore" });
    onTestFinished(async () => void bare.kill("SIGKILL"));
    await waitFor(async () => (await connectTestNats(nats.url).then((nc) => nc.close()).then(() => true, () => false)) || undefined, { what: "a NATS without JetStream" });

    const u = users.spawn();
    await waitFor(() => u.output.some((line) => line.includes("JetStream failed; retrying")) || undefined, { what: "the JetStream step retried", timeoutMs: 30_000 });
    const waiting = await fetch(`${users.url}/readyz`);
    expect(waiting.status).toBe(503);
    expect(((await waiting.json()) as { checks: Record<string, string> }).checks.nats).toBe("connected; JetStream not answering yet");
    expect(u.child.exitCode).toBeNull();

    await new Promise((done) => (bare.once("exit", done), bare.kill("SIGTERM")));
    await nats.start();
    await waitReady(users.url, u, 30_000);
    expect((await registerOk(users.url)).id).toBeTruthy();
  }, 120_000);
});
