import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { asc, eq } from "drizzle-orm";
import { createEvent, inboxReplayTarget, openDatabase, uuidv7, type Database } from "@orderflow/shared";
import { createTestDatabase, repoRoot, startOwnNatsServer, startProcess, startSystem, testNatsUrl, teardown, waitFor, type TestSystem } from "@orderflow/shared/testing";
import { users } from "./db/schema.js";

let sys: TestSystem;
let userDb: Database;
beforeAll(async () => {
  sys = await startSystem();
  userDb = await openDatabase(sys.services["user-service"].database.url, { poolSize: 2 });
});
afterAll(() => teardown(() => userDb?.close(), () => sys?.cleanup()));

const json = { "content-type": "application/json" };
const counts = async () => (await userDb.db.select({ id: users.id, orderCount: users.orderCount }).from(users).orderBy(asc(users.id))).map((u) => [u.id, u.orderCount]);

/** Runs a service's replay entry as the real command does, and returns its exit code and output. */
async function runReplay(service: "user-service" | "order-service", args: string[] = [], env: Record<string, string> = {}) {
  const proc = startProcess(join(repoRoot, "services", service, "dist", "replay.js"), args, {
    DATABASE_URL: sys.services[service].database.url,
    NATS_URL: testNatsUrl(),
    NATS_NAMESPACE: sys.namespace,
    ...env,
  });
  const { code } = await proc.exitWithin(60_000);
  return { code, output: proc.output.join("\n") };
}

describe("npm run replay", () => {
  it("rebuilds a wiped orderCount projection exactly from ORDERS while the services run, and again changes nothing", async () => {
    const { "user-service": us, "order-service": os } = sys.services;
    const expected = new Map<string, number>();
    for (const extra of [0, 1, 2, 0]) {
      const res = await fetch(`${us.url}/users`, { method: "POST", headers: json, body: JSON.stringify({ email: `r${Math.random().toString(36).slice(2)}@example.com`, name: "R" }) });
      const { id } = (await res.json()) as { id: string };
      // The welcome order needs the customer known to order-service first.
      await waitFor(async () => ((await (await fetch(`${os.url}/orders?userId=${id}`)).json()) as { items: unknown[] }).items.length === 1, { what: "welcome order" });
      for (let i = 0; i < extra; i++) {
        const placed = await fetch(`${os.url}/orders`, { method: "POST", headers: json, body: JSON.stringify({ userId: id, items: [{ sku: "TEA", quantity: 1, unitPriceCents: 100 }] }) });
        expect(placed.status).toBe(201);
      }
      expected.set(id, 1 + extra);
    }
    const want = [...expected.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    await waitFor(async () => JSON.stringify(await counts()) === JSON.stringify(want), { what: "live counts" });

    // Wipe and corrupt the projection: zero some counts, inflate another.
    await userDb.db.update(users).set({ orderCount: 0 });
    await userDb.db.update(users).set({ orderCount: 42 }).where(eq(users.id, want[0]![0]));

    const full = await runReplay("user-service");
    expect(full.code, full.output).toBe(0);
    expect(full.output).toMatch(/\[#+\] 100% 7\/7/);
    expect(full.output).toMatch(/user-service: read 7 events, applied 7, skipped 0 \(already applied\), failed 0 \(projection reset first\)/);
    expect(await counts()).toEqual(want);

    const again = await runReplay("user-service");
    expect(again.code).toBe(0);
    expect(await counts()).toEqual(want);
    const partial = await runReplay("user-service", ["--from-seq", "1"]);
    expect(partial.output).toMatch(/read 7 events, applied 0, skipped 7/);
    const dry = await runReplay("user-service", ["--dry-run"]);
    expect(dry.output).toMatch(/dry run: user-service: read 7 events, would apply 7/);
    expect(await counts()).toEqual(want);

    // order-service: re-applying every registration creates no second welcome order.
    const orders = await runReplay("order-service");
    expect(orders.code, orders.output).toBe(0);
    expect(orders.output).toMatch(/order-service: read 4 events, applied 4/);
    for (const [id, n] of want) {
      const list = (await (await fetch(`${os.url}/orders?userId=${id}`)).json()) as { items: unknown[] };
      expect(list.items).toHaveLength(n);
    }
    expect(await counts()).toEqual(want);
  });

  it("rejects bad flags with the usage and exit code 2", async () => {
    const bad = await runReplay("user-service", ["--from-seq", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.output).toMatch(/--from-seq must be a whole number/);
    expect((await runReplay("user-service", ["--from-seq", "1", "--from-time", "2026-01-01T00:00:00Z"])).code).toBe(2);
  });
  it("refuses a database that is not there or not migrated, even for a dry run, instead of reporting what it would apply", async () => {
    const empty = await createTestDatabase("of_replay_empty");
    onTestFinished(() => empty.drop());
    const unmigrated = await runReplay("user-service", ["--dry-run"], { DATABASE_URL: empty.url });
    expect(unmigrated.code).toBe(1);
    expect(unmigrated.output).toMatch(/replay: the database has \d+ migration\(s\) of user-service not applied yet; run its migrate \(or start it once\) first; nothing replayed/);
    const dir = join(mkdtempSync(join(tmpdir(), "of-replay-")), "never-started");
    onTestFinished(() => rmSync(dirname(dir), { recursive: true, force: true }));
    const missing = await runReplay("user-service", ["--dry-run"], { DATABASE_URL: `pglite://${dir}` });
    expect(missing.code).toBe(1);
    expect(missing.output).toContain(`replay: there is no database at ${dir}`);
    expect(existsSync(dir)).toBe(false); // a dry run writes nothing, not even an empty database
    mkdirSync(dir); // a folder made ahead of time (a volume mount, say) holds no database either
    const emptyFolder = await runReplay("user-service", ["--dry-run"], { DATABASE_URL: `pglite://${dir}` });
    expect(emptyFolder.code).toBe(1);
    expect(emptyFolder.output).toContain(`replay: there is no database at ${dir}`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("says at once that NATS refused its credentials, rather than 'not reachable' after its 15 s connect deadline", async () => {
    const nats = await startOwnNatsServer({ extraArgs: ["--user", "svc", "--pass", "right"] });
    onTestFinished(() => nats.dispose());
    const wrong = await runReplay("user-service", [], { NATS_URL: nats.url, NATS_USER: "svc", NATS_PASSWORD: "wrong" });
    expect(wrong.code).toBe(1);
    expect(wrong.output).toContain(`replay: NATS at ${nats.url} refused the credentials:`);
    expect(wrong.output).not.toContain("not reachable");
  });

  it("hands the handlers the replayed message's trace context, as the live consumer does", async () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const seen: (string | undefined)[] = [];
    const target = inboxReplayTarget({
      name: "trace-test",
      consumer: `trace-test-${uuidv7()}`,
      sources: [{ stream: "ORDERS" }],
      handlers: { "orders.created": async (_tx, _event, context) => void seen.push(context.traceparent) },
      resetProjection: async () => {},
    });
    const userId = uuidv7();
    const event = createEvent({ name: "orders.created", source: "/t", subject: userId, data: { orderId: uuidv7(), userId, status: "created", source: "api", items: [], totalCents: 0, createdAt: new Date().toISOString() } });
    const message = { stream: "ORDERS" as const, seq: 1, subject: "orders.created", data: Buffer.from(JSON.stringify(event)), headers: { traceparent }, storedAt: new Date() };
    await userDb.db.transaction((tx) => target.apply(tx, [message]));
    expect(seen).toEqual([traceparent]);
  });
});
