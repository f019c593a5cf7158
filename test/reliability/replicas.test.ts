import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  freePort,
  repoRoot,
  startProcess,
  startSystem,
  teardown,
  testNatsUrl,
  waitReady,
  type ManagedProcess,
  type TestService,
  type TestSystem,
} from "@orderflow/shared/testing";
import { checkExactlyOnce, readLedger, registrationLoad, report, sqlClient, streamMessages, waitSettled } from "./helpers.js";

const procs: ManagedProcess[] = [];
let sys: TestSystem | undefined;
afterAll(() => teardown(() => Promise.all(procs.map((p) => p.kill("SIGKILL"))), () => sys?.cleanup()));

/** One more process of a service against the same database and namespace, on its own port. */
async function spawnReplica(system: TestSystem, svc: TestService, instance: string): Promise<string> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = startProcess(join(repoRoot, "services", svc.name, "dist", "main.js"), [], {
    PORT: String(port),
    HOST: "127.0.0.1",
    DATABASE_URL: svc.database.url,
    NATS_URL: testNatsUrl(),
    NATS_NAMESPACE: system.namespace,
    LOG_LEVEL: "info",
    RETRY_DELAYS_MS: "200,500,1000",
    SERVICE_INSTANCE: instance,
  }, { cwd: join(repoRoot, "services", svc.name) });
  procs.push(proc);
  await waitReady(url, proc);
  return url;
}

/** Inbox rows per instance: which replica applied how many events. */
async function appliedBy(dbUrl: string): Promise<Map<string, number>> {
  const sql = sqlClient(dbUrl);
  try {
    const rows = await sql<{ by: string; n: number }[]>`select coalesce(processed_by, '?') as by, count(*)::int as n from inbox group by 1`;
    return new Map(rows.map((r) => [r.by, r.n]));
  } finally {
    await sql.end();
  }
}

const minus = (a: Map<string, number>, b: Map<string, number>) => new Map([...a].map(([k, v]) => [k, v - (b.get(k) ?? 0)]));
const show = (m: Map<string, number>) => [...m].sort().map(([k, v]) => `${k}:${v}`).join(",");

describe("replicas", () => {
  it("two, then three replicas of each service share the durable consumers and the relay: each event applied once, work spread", async () => {
    sys = await startSystem({ env: { SERVICE_INSTANCE: "r1" } });
    const { "user-service": users, "order-service": orders } = sys.services;
    const userUrls = [users.url];
    userUrls.push(await spawnReplica(sys, users, "r2"));
    await spawnReplica(sys, orders, "r2");

    const phase = async (n: number) => {
      const load = registrationLoad(() => userUrls, { workers: 6 });
      try {
        await load.more(n);
      } finally {
        await load.stop();
      }
      await waitSettled(sys!);
      return load;
    };

    const load2 = await phase(150);
    const orderBy2 = await appliedBy(orders.database.url);
    const userBy2 = await appliedBy(users.database.url);

    userUrls.push(await spawnReplica(sys, users, "r3"));
    await spawnReplica(sys, orders, "r3");
    const load3 = await phase(220);
    const orderBy3 = minus(await appliedBy(orders.database.url), orderBy2);
    const userBy3 = minus(await appliedBy(users.database.url), userBy2);

    const ledger = await readLedger(sys);
    const accepted = [...load2.accepted, ...load3.accepted];
    const check = checkExactlyOnce(ledger, accepted);
    expect({ ...load2.unexpectedStatuses(), ...load3.unexpectedStatuses() }).toEqual({});
    report("replicas 2 then 3", {
      sent: load2.sent + load3.sent,
      accepted: accepted.length,
      applied: ledger.orderInbox,
      deadLettered: await streamMessages(sys.nc, sys.namespace, "DLQ"),
      duplicates: check.duplicateWelcomes,
      orderServiceBy2: show(orderBy2),
      userServiceBy2: show(userBy2),
      orderServiceBy3: show(orderBy3),
      userServiceBy3: show(userBy3),
    });
    expect(check).toEqual({ missingAccepted: [], unknownCustomers: [], withoutWelcome: [], duplicateWelcomes: 0, wrongCounts: 0 });
    expect(ledger.orderInbox).toBe(ledger.users.size);
    expect(ledger.userInbox).toBe(ledger.users.size);
    expect(await streamMessages(sys.nc, sys.namespace, "USERS")).toBe(ledger.users.size);
    // Every replica did a real share of the consuming in each phase.
    for (const [by, replicas, total] of [
      [orderBy2, ["r1", "r2"], load2.accepted.length],
      [userBy2, ["r1", "r2"], load2.accepted.length],
      [orderBy3, ["r1", "r2", "r3"], load3.accepted.length],
      [userBy3, ["r1", "r2", "r3"], load3.accepted.length],
    ] as const) {
      expect([...by.keys()].filter((k) => (by.get(k) ?? 0) > 0).sort()).toEqual([...replicas]);
      for (const r of replicas) expect(by.get(r)!, `${r} of ${show(by)}`).toBeGreaterThanOrEqual(Math.floor(total / (replicas.length * 10)));
    }
  }, 150_000);
});
