import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { asc, eq, sql } from "drizzle-orm";
import { jetstream } from "@nats-io/jetstream";
import { createEvent, createNames, executeRows, ForeignMigrationsError, inboxReplayTarget, openDatabase, pendingMigrations, uuidv7, type Database } from "@orderflow/shared";
import {
  createMigratedDatabase,
  createTestDatabase,
  deleteNamespace,
  freePort,
  repoRoot,
  serviceEnv,
  startOwnNatsServer,
  startProcess,
  startSystem,
  testNatsUrl,
  teardown,
  uniqueNamespace,
  waitFor,
  type TestSystem,
} from "@orderflow/shared/testing";
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

/** The JSON log lines (pino, on stderr) of a replay's output with this message. */
const logged = (output: string, msg: string) =>
  output
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.msg === msg);

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

  it("exits 3 naming the events it could not apply (what the live consumer dead-letters), and a dry run with 'would fail'", async () => {
    const js = jetstream(sys.nc);
    const names = createNames(sys.namespace);
    const stranger = uuidv7();
    // Three reasons: a handler's PermanentError (no such user), no handler for the type, not JSON.
    const orphan = createEvent({ name: "orders.created", source: "/test", subject: stranger, data: { orderId: uuidv7(), userId: stranger, status: "created", source: "api", items: [], totalCents: 0, createdAt: new Date().toISOString() } });
    const wrongType = createEvent({ name: "users.registered", source: "/test", subject: stranger, data: { userId: stranger, email: "w@example.com", name: "W", registeredAt: new Date().toISOString() } });
    const first = (await js.publish(names.subject("orders.created"), JSON.stringify(orphan))).seq;
    await js.publish(names.subject("orders.created"), JSON.stringify(wrongType));
    for (let i = 0; i < 20; i++) await js.publish(names.subject("orders.created"), `not json ${i}`);

    const run = await runReplay("user-service", ["--from-seq", String(first)]);
    expect(run.code, run.output).toBe(3);
    expect(run.output).toMatch(/user-service: read 22 events, applied 0, skipped 0 \(already applied\), failed 22 in/);
    expect(run.output).toContain("replay: finished, but 22 event(s) could not be applied");
    expect(run.output).toContain("They are what the live consumer dead-letters: see `npm run dlq -- list`");
    // The first 20, each with where it is and why; the rest as a count.
    const failures = logged(run.output, "event could not be applied");
    expect(failures).toHaveLength(20);
    expect(failures.slice(0, 3)).toEqual([
      expect.objectContaining({ level: 40, stream: names.stream("ORDERS"), seq: first, subject: "orders.created", eventId: orphan.id, reason: `PermanentError: order ${orphan.data.orderId} belongs to unknown user ${stranger}` }),
      expect.objectContaining({ seq: first + 1, eventId: wrongType.id, reason: "UnknownEventTypeError: user-service has no handler for io.orderflow.user.registered.v1" }),
      expect.objectContaining({ seq: first + 2, subject: "orders.created", reason: "InvalidEventError: message body is not valid JSON" }),
    ]);
    expect(logged(run.output, "2 event(s) could not be applied beyond the 20 logged one by one")).toHaveLength(1);

    // A dry run runs no handler: it can tell only what does not decode or has no handler.
    const dry = await runReplay("user-service", ["--from-seq", String(first), "--dry-run"]);
    expect(dry.code, dry.output).toBe(3);
    expect(dry.output).toMatch(/dry run: user-service: read 22 events, would apply 1, skipped 0 \(already applied\), failed 21 in/);
    expect(dry.output).toContain("replay: dry run: 21 event(s) would fail to apply");
    expect(logged(dry.output, "event would fail to apply")).toHaveLength(20);
    expect(logged(dry.output, "1 event(s) would fail to apply beyond the 20 logged one by one")).toHaveLength(1);
  });

  it("prints the usage on stdout with exit 0 for --help and -h, and refuses a value flag given twice with exit 2", async () => {
    for (const flag of ["--help", "-h"]) {
      const help = spawnSync(process.execPath, [join(repoRoot, "services", "user-service", "dist", "replay.js"), "--from-seq", "3", flag], { encoding: "utf8", timeout: 30_000 });
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/^usage: npm run replay -- --service <service> /);
      expect(help.stdout).toContain("exit codes: 0 done; 1 failed");
      expect(help.stderr).toBe("");
    }
    for (const [flag, a, b] of [
      ["--from-seq", "5", "9"],
      ["--from-time", "2026-01-01", "2026-02-01"],
      ["--service", "user-service", "order-service"],
    ] as const) {
      const twice = await runReplay("user-service", [flag, a, flag, b]);
      expect(twice.code, twice.output).toBe(2);
      expect(twice.output).toContain(`replay: ${flag} given 2 times; give it once`);
    }
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

  it("counts in a dry run what the run would: a stream's later copies of an event as skipped, within a batch and across batches", async () => {
    const target = inboxReplayTarget({
      name: "dry-test",
      consumer: `dry-test-${uuidv7()}`,
      sources: [{ stream: "ORDERS" }],
      handlers: { "orders.created": async () => {} },
      resetProjection: async () => {},
    });
    const order = () => {
      const userId = uuidv7();
      return createEvent({ name: "orders.created", source: "/t", subject: userId, data: { orderId: uuidv7(), userId, status: "created", source: "api", items: [], totalCents: 0, createdAt: new Date().toISOString() } });
    };
    let seq = 0;
    const message = (event: ReturnType<typeof order>) => ({ stream: "ORDERS" as const, seq: ++seq, subject: "orders.created", data: Buffer.from(JSON.stringify(event)), headers: {}, storedAt: new Date() });
    const [e, f, g] = [order(), order(), order()];
    await userDb.db.transaction((tx) => target.apply(tx, [message(g)])); // g is applied already
    // e three times (a dlq replay, a republished copy), in both batches.
    const batches = [[message(e), message(e), message(g)], [message(e), message(f)]];
    const total = (results: { applied: number; skipped: number }[]) => results.reduce((t, r) => ({ applied: t.applied + r.applied, skipped: t.skipped + r.skipped }), { applied: 0, skipped: 0 });
    const preview = async (full: boolean) => {
      const counted = new Set<string>();
      const results = [];
      for (const b of batches) results.push(await target.preview(userDb.db, b, full, counted));
      return total(results);
    };
    const apply = async () => {
      const results = [];
      for (const b of batches) results.push(await userDb.db.transaction((tx) => target.apply(tx, b)));
      return total(results);
    };
    const partial = await preview(false);
    expect(partial).toEqual({ applied: 2, skipped: 3 }); // e and f; e's copies and g
    const full = await preview(true);
    expect(full).toEqual({ applied: 3, skipped: 2 }); // e, g and f after the reset; e's copies
    expect(await apply()).toEqual(partial);
    await userDb.db.transaction((tx) => target.reset(tx));
    expect(await apply()).toEqual(full);
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

describe("a database of another service", () => {
  const migrationsOf = (service: string) => join(repoRoot, "services", service, "drizzle");
  const recorded = async (url: string) => {
    const db = await openDatabase(url, { poolSize: 1 });
    try {
      return (await executeRows<{ n: number }>(db.db, sql`select count(*)::int as n from drizzle.__drizzle_migrations`))[0]!.n;
    } finally {
      await db.close();
    }
  };

  it("is refused by the replay with exit 1 naming the service, dry run included, even when its newest migration is newer than all of ours", async () => {
    // user-service's last migration is newer than every one of order-service's: comparing only
    // the newest called this database fully migrated for order-service.
    const users = await runReplay("order-service", ["--dry-run"], { DATABASE_URL: sys.services["user-service"].database.url });
    expect(users.code, users.output).toBe(1);
    expect(users.output).toContain(`replay: the database at ${sys.services["user-service"].database.url} holds another schema's migrations, not order-service's (`);
    expect(users.output).toMatch(/\(its recorded migrations lack 3 of this journal's older ones \(0000_init, 0001_inbox_instance_and_idempotency, 0002_outbox_deleted_on_publish\)\); check DATABASE_URL; nothing replayed/);
    // The other way round a migration is also "pending"; the foreign history is what is said.
    const orders = await runReplay("user-service", [], { DATABASE_URL: sys.services["order-service"].database.url });
    expect(orders.code, orders.output).toBe(1);
    expect(orders.output).toContain("holds another schema's migrations, not user-service's");
    expect(orders.output).not.toContain("not applied yet");
  });

  it("is not a database migrated by a newer build: recorded migrations newer than the whole journal are a rollback, allowed", async () => {
    const migrated = await createMigratedDatabase(migrationsOf("user-service"), "of_replay_rollback");
    onTestFinished(() => migrated.drop());
    const journal = JSON.parse(readFileSync(join(migrationsOf("user-service"), "meta", "_journal.json"), "utf8")) as { entries: { when: number }[] };
    await migrated.db.execute(sql`insert into drizzle.__drizzle_migrations (hash, created_at) values ('from-a-newer-build', ${journal.entries.at(-1)!.when + 60_000})`);
    expect(await pendingMigrations(migrated.db, migrationsOf("user-service"))).toBe(0);
    const newer = await runReplay("user-service", ["--dry-run", "--from-seq", "999999"], { DATABASE_URL: migrated.url });
    expect(newer.code, newer.output).toBe(0);
    // One of ours missing below the newest recorded is another history, whatever else matches.
    await migrated.db.execute(sql`delete from drizzle.__drizzle_migrations where created_at = ${journal.entries[1]!.when}`);
    await expect(pendingMigrations(migrated.db, migrationsOf("user-service"))).rejects.toThrow(ForeignMigrationsError);
  });

  it.each(["true", "false"])("makes a service exit 1 at start-up with the reason (MIGRATE_ON_START=%s), migrating nothing into it", async (migrateOnStart) => {
    const database = sys.services["user-service"].database;
    const before = await recorded(database.url);
    // A namespace of its own: a service that wrongly started would join the test system's consumers.
    const namespace = uniqueNamespace();
    onTestFinished(() => deleteNamespace(sys.nc, namespace));
    const proc = startProcess(join(repoRoot, "services", "order-service", "dist", "main.js"), [], {
      ...serviceEnv({ port: await freePort(), databaseUrl: database.url, natsUrl: testNatsUrl(), namespace }),
      MIGRATE_ON_START: migrateOnStart,
    });
    onTestFinished(() => proc.kill("SIGKILL").then(() => undefined));
    await waitFor(() => proc.child.exitCode !== null || proc.child.signalCode !== null, { what: "the service to exit", timeoutMs: 30_000 });
    expect((await proc.exited).code, proc.output.join("\n")).toBe(1);
    expect(proc.output.join("\n")).toContain(`the database at ${database.url} holds another schema's migrations, not order-service's (its recorded migrations lack 3 of this journal's older ones`);
    expect(await recorded(database.url)).toBe(before);
  });
});
