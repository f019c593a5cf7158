import { describe, expect, it, onTestFinished } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { createNames } from "@orderflow/shared";
import { adminSql, startOwnNatsServer, startSystem, waitFor, type OwnNatsServer, type TestSystem } from "@orderflow/shared/testing";
import { getUser, ordersOf, register, registerOk, sqlClient, waitSettled, waitForCount, waitForWelcome, type User } from "./helpers.js";

async function readyStatus(url: string) {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { checks: Record<string, string> } };
}

describe("connection faults", () => {
  it("accepts registrations while NATS is down and delivers them once it is back", async () => {
    const nats: OwnNatsServer = await startOwnNatsServer();
    onTestFinished(() => nats.dispose());
    const sys: TestSystem = await startSystem({ natsUrl: nats.url });
    onTestFinished(() => sys.cleanup());
    const { "user-service": users, "order-service": orders } = sys.services;

    await nats.stop();
    // It stays ready (in rotation): registrations commit with their events in the outbox.
    const down = await waitFor(async () => ((r) => (r.body.checks.nats !== "ok" ? r : undefined))(await readyStatus(users.url)), { what: "user-service to notice NATS is gone" });
    expect(down.status).toBe(200);
    expect(down.body).toMatchObject({ status: "degraded", checks: { database: "ok", nats: expect.stringMatching(/^disconnected/) } });
    const accepted: User[] = [];
    for (let i = 0; i < 5; i++) accepted.push(await registerOk(users.url));

    await nats.start();
    for (const u of accepted) {
      const welcome = (await waitForWelcome(orders.url, u.id, 30_000)).filter((o) => o.source === "registration");
      expect(welcome).toHaveLength(1);
      await waitForCount(users.url, u.id, 1, 30_000);
    }
    expect((await readyStatus(users.url)).status).toBe(200);
    console.log(`nats outage: accepted while down=${accepted.length}, welcome orders after recovery=${accepted.length}`);
  });

  it("reports the database outage on /readyz and recovers without a restart", async () => {
    const sys = await startSystem();
    onTestFinished(() => sys.cleanup());
    const orders = sys.services["order-service"];
    const users = sys.services["user-service"];
    const dbName = orders.database.name;

    await adminSql(`alter database "${dbName}" allow_connections false`);
    const down = await waitFor(async () => {
      // Again on every look: a connection mid-handshake when they were refused can outlive a round.
      await adminSql(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${dbName}'`);
      const r = await readyStatus(orders.url);
      return r.status === 503 ? r : undefined;
    }, { what: "order-service readiness 503" });
    // A category for the (often public) endpoint; the driver's words, naming the database, in the log.
    expect(down.body.checks.database).toMatch(/^(unreachable|failing) \(the service log has the reason\)$/);
    await waitFor(() => orders.proc.output.some((l) => l.includes("database check failing") && l.includes(dbName)), { what: "the reason in the log", timeoutMs: 5000 });
    expect((await fetch(`${orders.url}/healthz`)).status).toBe(200);

    // Registrations keep flowing meanwhile; their events wait in the stream for the consumer.
    const during = await registerOk(users.url);
    // A client request during the outage gets a 503 problem, not a 500.
    const res = await fetch(`${orders.url}/orders?limit=1`);
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toBe("application/problem+json");

    await adminSql(`alter database "${dbName}" allow_connections true`);
    await waitFor(async () => (await readyStatus(orders.url)).status === 200, { what: "order-service ready again", timeoutMs: 30_000 });
    const welcome = (await waitForWelcome(orders.url, during.id, 45_000)).filter((o) => o.source === "registration");
    expect(welcome).toHaveLength(1);
    await waitForCount(users.url, during.id, 1, 30_000);
  });
});

describe("lost streams", () => {
  it("recreates the streams a lost JetStream store took with it, without a restart, and the flow goes on", async () => {
    const nats = await startOwnNatsServer();
    onTestFinished(() => nats.dispose());
    const sys = await startSystem({ natsUrl: nats.url });
    onTestFinished(() => sys.cleanup());
    const { "user-service": users, "order-service": orders } = sys.services;
    const before = await registerOk(users.url);
    await waitForCount(users.url, before.id, 1);
    // The broker comes back with an empty store (its volume lost): no stream, no consumer.
    await nats.stop();
    nats.wipeStore();
    await nats.start();
    const after = await registerOk(users.url);
    // Up to three missed heartbeats (10 s apart) before a consumer looks again, on a busy machine.
    const welcome = (await waitForWelcome(orders.url, after.id, 75_000)).filter((o) => o.source === "registration");
    expect(welcome).toHaveLength(1);
    await waitForCount(users.url, after.id, 1, 75_000);
    const restored = [users, orders].filter((s) => s.proc.output.some((l) => l.includes("streams recreated")));
    expect(restored.length).toBeGreaterThan(0);
  }, 180_000);
});

describe("graceful shutdown", () => {
  it("exits 0 on SIGTERM under load; a restart finishes the work with no loss and no duplicates", async () => {
    const sys = await startSystem();
    onTestFinished(() => sys.cleanup());
    const { "user-service": users, "order-service": orders } = sys.services;

    const ids: string[] = [];
    let stop = false;
    const load = (async () => {
      while (!stop) {
        const res = await register(users.url);
        if (res.status === 201) ids.push(((await res.json()) as User).id);
      }
    })();
    // Stopped before the system is torn down, also when an assertion below fails first.
    onTestFinished(async () => {
      stop = true;
      await load.catch(() => {});
    });
    await waitFor(() => ids.length >= 30, { what: "some registrations" });
    const t0 = Date.now();
    const exit = await orders.proc.kill("SIGTERM");
    const took = Date.now() - t0;
    // 0, not the shutdown deadline's 1: it finished its in-flight work in time.
    expect(exit.code).toBe(0);
    await waitFor(() => ids.length >= 60, { what: "registrations while order-service is down" });
    stop = true;
    await load;

    await orders.restart();
    // What the server had already sent into the closing pull reached no one: it comes back after
    // ack_wait (30 s), so the first of those waits can take that long after the restart.
    for (const id of ids) {
      const welcome = (await waitForWelcome(orders.url, id, 45_000)).filter((o) => o.source === "registration");
      expect(welcome).toHaveLength(1);
    }
    for (const id of ids) await waitForCount(users.url, id, 1, 30_000);
    await waitSettled(sys);
    for (const id of ids) expect((await getUser(users.url, id)).orderCount).toBe(1);
    console.log(`shutdown: registered=${ids.length} welcome orders=${ids.length} duplicates=0 exit=${exit.code} in ${took} ms`);
  }, 120_000);

  it("the user service drains too: SIGTERM exits 0 and every accepted registration is published", async () => {
    const sys = await startSystem();
    onTestFinished(() => sys.cleanup());
    const { "user-service": users, "order-service": orders } = sys.services;
    const accepted = await Promise.all(Array.from({ length: 20 }, () => registerOk(users.url)));
    const exit = await users.proc.kill("SIGTERM");
    expect(exit.code).toBe(0);
    // Checked before any restart: a new process would publish what the old one left behind.
    const userDb = sqlClient(users.database.url);
    onTestFinished(() => userDb.end());
    expect((await userDb<{ n: number }[]>`select count(*)::int as n from outbox`)[0]!.n).toBe(0);
    const jsm = await jetstreamManager(sys.nc);
    expect((await jsm.streams.info(createNames(sys.namespace).stream("USERS"))).state.messages).toBe(accepted.length);
    for (const u of accepted) expect((await waitForWelcome(orders.url, u.id)).filter((o) => o.source === "registration")).toHaveLength(1);
    await users.restart();
    // After the restart a second registration with one of the emails is still a conflict.
    expect((await register(users.url, { email: accepted[0]!.email })).status).toBe(409);
    expect(await ordersOf(orders.url, accepted[0]!.id)).toHaveLength(1);
  });
});
