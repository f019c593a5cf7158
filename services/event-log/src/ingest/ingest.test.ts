import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { asc, eq, inArray, or, sql } from "drizzle-orm";
import { createEvent, createLogger, createNames, ensureStreams, IncompleteHistoryError, replay, ReplayInterruptedError, uuidv7, type Names } from "@orderflow/shared";
import { connectTestNats, createMigratedDatabase, deleteNamespace, publishRawHeaders, startOwnNatsServer, uniqueNamespace, teardown, waitFor } from "@orderflow/shared/testing";
import { events } from "../db/schema.js";
import { eventLogReplayTarget } from "../replay.js";
import { createIngestConsumer, ingestDurable, type IngestConsumer } from "./ingest.consumer.js";
import { createEventWriter, insertEvents } from "./ingest.store.js";
import { toEventRow } from "./ingest.domain.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
const log = createLogger({ service: "test", level: (process.env.TEST_LOG_LEVEL ?? "silent") as "silent" });
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let names: Names;
const consumers: IngestConsumer[] = [];

beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_eventlog_ingest");
  nc = await connectTestNats();
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  names = createNames(uniqueNamespace());
  await ensureStreams(jsm, names, ["USERS", "ORDERS", "SYSTEM", "DLQ"], { replicas: 1, maxAgeMs: 3600_000 });
});
afterAll(() =>
  teardown(
    () => Promise.all(consumers.map((c) => c.stop())),
    () => nc && deleteNamespace(nc, names.namespace),
    () => nc?.close(),
    () => env?.drop(),
  ),
);

/** Runs `fn` against streams of a namespace of its own, deleted afterwards. */
async function inOwnNamespace(fn: (own: Names) => Promise<void>) {
  const own = createNames(uniqueNamespace());
  try {
    // Inside the try: streams made before a failing one are deleted too.
    await ensureStreams(jsm, own, ["USERS", "ORDERS", "SYSTEM", "DLQ"], { replicas: 1, maxAgeMs: 3600_000 });
    await fn(own);
  } finally {
    // A namespace left behind fails the test instead of piling up on the shared server.
    await teardown(() => deleteNamespace(nc, own.namespace));
  }
}

const snapshot = async () =>
  (await env.db.select().from(events).orderBy(asc(events.stream), asc(events.streamSeq))).map((r) => ({
    stream: r.stream, streamSeq: r.streamSeq, eventId: r.eventId, type: r.type, entity: r.entity, valid: r.valid, error: r.error, data: r.data, time: r.time.toISOString(),
  }));

describe("ingest and replay", () => {
  it("stores every stream's events once, invalid ones flagged, and a full replay rebuilds the log exactly", async () => {
    const writer = createEventWriter({ db: env.db });
    for (const stream of ["USERS", "ORDERS", "SYSTEM", "DLQ"] as const) {
      const c = createIngestConsumer({ nc, js, jsm, names, log, writer, stream, batchSize: 10, lingerMs: 10 });
      consumers.push(c);
      await c.start();
    }
    const userIds = Array.from({ length: 25 }, () => uuidv7());
    for (const userId of userIds) {
      const e = createEvent({ name: "users.registered", source: "/test", subject: userId, data: { userId, email: "a@b.co", name: "A", registeredAt: new Date().toISOString() } });
      await js.publish(names.subject("users.registered"), JSON.stringify(e), { msgID: e.id, headers: undefined });
    }
    const bad = createEvent({ name: "users.registered", source: "/test", subject: "x", data: { userId: "x" } as never });
    await js.publish(names.subject("users.registered"), JSON.stringify(bad));
    await js.publish(names.subject("orders.created"), "{not json");
    const sys = createEvent({ name: "system.service.ready", source: "/orderflow/test", subject: "test/i1", data: { service: "test", instance: "i1", version: "1" } });
    await js.publish(names.subject("system.service.ready"), JSON.stringify(sys));
    await js.publish(names.subject("dlq.order-service.users.registered"), JSON.stringify(bad), { headers: undefined });
    // What Postgres cannot store (NUL, a time in year 0): kept with it replaced and flagged, where
    // it used to fail its whole batch, again and again, and stop the stream's ingestion.
    const u = userIds[0]!;
    const nul = createEvent({ name: "users.registered", source: "/test", subject: u, data: { userId: u, email: "n@b.co", name: "a\u0000b", registeredAt: new Date().toISOString() } });
    await js.publish(names.subject("users.registered"), JSON.stringify(nul));
    await js.publish(names.subject("orders.created"), "raw\u0000bytes");
    const ancient = { ...createEvent({ name: "system.service.ready", source: "/orderflow/test", subject: "test/i2", data: { service: "test", instance: "i2", version: "1" } }), time: "0000-01-01T00:00:00Z" };
    await js.publish(names.subject("system.service.ready"), JSON.stringify(ancient));

    const expected = 25 + 1 + 1 + 1 + 1 + 3;
    await waitFor(async () => (await snapshot()).length === expected, { what: `${expected} stored events` });
    const stored = await snapshot();
    expect(stored.filter((r) => !r.valid).map((r) => [r.stream, r.eventId])).toEqual([
      ["DLQ", bad.id],
      ["ORDERS", null],
      ["ORDERS", null],
      ["SYSTEM", ancient.id],
      ["USERS", bad.id],
      ["USERS", nul.id],
    ]);
    expect(stored.find((r) => r.eventId === nul.id)).toMatchObject({ data: { name: "a\uFFFDb" }, error: expect.stringMatching(/cannot store/) });
    expect(stored.find((r) => r.stream === "SYSTEM")).toMatchObject({ entity: "test/i1", valid: true });

    // Full rebuild: the table is emptied and reloaded from the streams, row for row.
    await env.db.delete(events);
    const rebuilt = await replay({ js, jsm, names, db: env.db, target: eventLogReplayTarget, batchSize: 7 });
    expect(rebuilt).toMatchObject({ read: expected, applied: expected, skipped: 0, reset: true });
    expect(await snapshot()).toEqual(stored);

    // A partial replay finds everything already stored; a dry run writes nothing.
    const again = await replay({ js, jsm, names, db: env.db, target: eventLogReplayTarget, fromSeq: 1 });
    expect(again).toMatchObject({ read: expected, applied: 0, skipped: expected, reset: false });
    const dry = await replay({ js, jsm, names, db: env.db, target: eventLogReplayTarget, fromSeq: 20, dryRun: true });
    expect(dry).toMatchObject({ read: 8, applied: 0, skipped: 8, dryRun: true });
    expect(await snapshot()).toEqual(stored);
  });
  it("reports the latency of the events a batch stored, not of those stored before (a redelivery)", async () => {
    await inOwnNamespace(async (own) => {
      const writer = createEventWriter({ db: env.db });
      const latencies: number[] = [];
      const outcomes = new Map<string, number>();
      const start = async () => {
        const c = createIngestConsumer({ nc, js, jsm, names: own, log, writer, stream: "SYSTEM", batchSize: 10, lingerMs: 10, onLatency: (s) => latencies.push(s), onOutcome: (o, n) => void outcomes.set(o, (outcomes.get(o) ?? 0) + n) });
        await c.start();
        return c;
      };
      const publish = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const e = createEvent({ name: "system.service.ready", source: "/orderflow/test", subject: `test/${uuidv7()}`, data: { service: "test", instance: uuidv7(), version: "1" } });
          await js.publish(own.subject("system.service.ready"), JSON.stringify(e), { msgID: e.id });
        }
      };
      const first = await start();
      await publish(3);
      await waitFor(() => outcomes.get("applied") === 3, { what: "3 events stored" });
      await first.stop();
      // A new durable reads the stream from its start: the three are delivered again, and one more.
      await jsm.consumers.delete(own.stream("SYSTEM"), own.durable(ingestDurable("SYSTEM")));
      const second = await start();
      onTestFinished(() => second.stop());
      await publish(1);
      await waitFor(() => outcomes.get("applied") === 4 && outcomes.get("duplicate") === 3, { what: "1 more stored, 3 found stored" });
      expect(latencies).toHaveLength(4);
      for (const s of latencies) expect(s).toSatisfy((v: number) => v >= 0 && v < 60);
    });
  });

  it("stores the rest of a batch when Postgres refuses one of its rows, and cuts indexed fields too long to index", async () => {
    const own = createNames(uniqueNamespace());
    // Registered as each is made, so a step that fails leaves nothing behind either; a trigger left
    // behind would refuse rows in later tests. (They run after the consumer's stop below.)
    onTestFinished(() => deleteNamespace(nc, own.namespace));
    await ensureStreams(jsm, own, ["USERS"], { replicas: 1, maxAgeMs: 3600_000 });
    // A refusal of a row's content that the domain cannot foresee, made by the database itself.
    onTestFinished(async () => void (await env.db.execute(sql.raw("drop trigger if exists refuse_poison on events; drop function if exists refuse_poison()"))));
    await env.db.execute(sql.raw(`create function refuse_poison() returns trigger language plpgsql as $$
      begin if new.subject = 'users.poison' and new.data is not null then raise exception 'refused for the test' using errcode = '22023'; end if; return new; end $$`));
    await env.db.execute(sql.raw("create trigger refuse_poison before insert on events for each row execute function refuse_poison()"));
    const c = createIngestConsumer({ nc, js, jsm, names: own, log, writer: createEventWriter({ db: env.db }), stream: "USERS", batchSize: 50, lingerMs: 50, retryDelayMs: 100 });
    try {
      // One batch: a subject whose index entry would exceed Postgres's 2,704 bytes, a row the
      // trigger refuses, and ordinary events around them.
      const ids: string[] = [];
      const publish = async (subject: string) => {
        const userId = uuidv7();
        const e = createEvent({ name: "users.registered", source: "/test", subject: userId, data: { userId, email: "a@b.co", name: "A", registeredAt: new Date().toISOString() } });
        ids.push(e.id);
        await js.publish(own.subject(subject), JSON.stringify(e));
      };
      await publish("users.registered");
      await publish(`users.${"x".repeat(3000)}`);
      await publish("users.registered");
      await publish("users.poison");
      await publish("users.registered");
      await c.start();
      const mine = () => env.db.select().from(events).where(or(inArray(events.eventId, ids), eq(events.subject, "users.poison"))).orderBy(asc(events.streamSeq));
      await waitFor(async () => (await mine()).length === 5, { what: "all five messages stored" });
      const rows = await mine();
      expect(rows.map((r) => r.valid)).toEqual([true, false, true, false, true]);
      expect(rows[1]!.subject).toHaveLength(512);
      expect(rows[1]).toMatchObject({ eventId: ids[1], error: expect.stringMatching(/over 512 characters/) });
      // The refused one: where it is, and why, in place of its content.
      expect(rows[3]).toMatchObject({ subject: "users.poison", eventId: null, data: null, error: expect.stringMatching(/refused to store/) });
      expect(rows[3]!.error).toMatch(/refused for the test/);
      // Acks follow the commit: the rows can be visible a moment before the last ack lands.
      await waitFor(async () => {
        const info = await jsm.consumers.info(own.stream("USERS"), own.durable(ingestDurable("USERS")));
        return info.num_ack_pending + info.num_pending === 0;
      }, { what: "every message of the batch acked" });
    } finally {
      await c.stop();
    }
  });

  it("stores a body nested 5,000 levels deep as text, and one with headers nats.js cannot decode, and goes on with the stream", async () => {
    await inOwnNamespace(async (own) => {
      const c = createIngestConsumer({ nc, js, jsm, names: own, log, writer: createEventWriter({ db: env.db }), stream: "USERS", batchSize: 10, lingerMs: 10, retryDelayMs: 100 });
      try {
        const userId = uuidv7();
        const e = createEvent({ name: "users.registered", source: "/test", subject: userId, data: { userId, email: "a@b.co", name: "A", registeredAt: new Date().toISOString() } });
        const deep = JSON.stringify({ ...e, id: uuidv7(), data: "DEEP" }).replace('"DEEP"', "[".repeat(5000) + "]".repeat(5000));
        await js.publish(own.subject("users.registered"), deep);
        // Headers nats.js cannot decode (a key with a space): stored without them, flagged.
        const badHeaders = { ...e, id: uuidv7() };
        await publishRawHeaders(own.subject("users.registered"), ["Bad Key: x"], JSON.stringify(badHeaders));
        await js.publish(own.subject("users.registered"), JSON.stringify(e));
        await c.start();
        const mine = () => env.db.select().from(events).where(eq(events.entity, userId)).orderBy(asc(events.streamSeq));
        await waitFor(async () => (await mine()).length === 3, { what: "the three messages stored" });
        const [flagged, unreadable, ok] = await mine();
        expect(flagged).toMatchObject({ valid: false, data: null, raw: deep, error: expect.stringMatching(/deeper than/) });
        expect(unreadable).toMatchObject({ valid: false, eventId: badHeaders.id, headers: {}, error: expect.stringMatching(/headers could not be decoded/) });
        expect(ok).toMatchObject({ valid: true, eventId: e.id });
        await waitFor(async () => {
          const info = await jsm.consumers.info(own.stream("USERS"), own.durable(ingestDurable("USERS")));
          return info.num_ack_pending + info.num_pending === 0;
        }, { what: "both acked" });
      } finally {
        await c.stop();
      }
    });
  });

  it("finishes a replay whose source stream was emptied after it counted the messages, instead of waiting for them forever", async () => {
    await inOwnNamespace(async (own) => {
    for (let i = 0; i < 3; i++) {
      const userId = uuidv7();
      const e = createEvent({ name: "users.registered", source: "/test", subject: userId, data: { userId, email: "a@b.co", name: "A", registeredAt: new Date().toISOString() } });
      await js.publish(own.subject("users.registered"), JSON.stringify(e));
    }
    for (let i = 0; i < 2; i++) await js.publish(own.subject("dlq.order-service.users.registered"), "{}");
    // Counted, not read yet: `dlq purge` (or `dlq replay`) empties the DLQ now; the first
    // stream's batch waits for it, so the DLQ is read only after.
    let purging: Promise<unknown> | undefined;
    const target = { ...eventLogReplayTarget, apply: async (...args: Parameters<typeof eventLogReplayTarget.apply>) => (await purging, eventLogReplayTarget.apply(...args)) };
    const result = await replay({
      js, jsm, names: own, db: env.db, target, fromSeq: 1, idleCheckMs: 100,
      onProgress: (read) => void (purging ??= read === 0 ? jsm.streams.purge(own.stream("DLQ")) : undefined),
    });
    expect(purging).toBeDefined();
    expect(result.read).toBe(3);
    });
  });

  it("refuses a full rebuild that would lose what a stream no longer holds, unless forced; a dry run says so", async () => {
    await inOwnNamespace(async (own) => {
    for (let i = 0; i < 3; i++) await js.publish(own.subject("dlq.order-service.users.registered"), `{"n":${i}}`);
    await replay({ js, jsm, names: own, db: env.db, target: eventLogReplayTarget, fromSeq: 1 });
    // `dlq purge 2`: the log still holds that dead letter; the DLQ no longer does.
    await jsm.streams.deleteMessage(own.stream("DLQ"), 2);
    const before = await snapshot();
    const refused = await replay({ js, jsm, names: own, db: env.db, target: eventLogReplayTarget }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(IncompleteHistoryError);
    expect((refused as IncompleteHistoryError).lost).toEqual([{ stream: own.stream("DLQ"), firstSeq: 1, deleted: 1 }]);
    expect((refused as Error).message).toMatch(/DLQ: 1 deleted\).*--from-seq or --from-time.*--force/);
    expect(await snapshot()).toEqual(before); // nothing reset
    const dry = await replay({ js, jsm, names: own, db: env.db, target: eventLogReplayTarget, dryRun: true });
    expect(dry.lost).toEqual([{ stream: own.stream("DLQ"), firstSeq: 1, deleted: 1 }]);
    expect(await snapshot()).toEqual(before);
    const forced = await replay({ js, jsm, names: own, db: env.db, target: eventLogReplayTarget, force: true });
    expect(forced).toMatchObject({ reset: true, read: 2, lost: [{ stream: own.stream("DLQ"), firstSeq: 1, deleted: 1 }] });
    });
  });

  it("stops after the batch in hand when its signal aborts (Ctrl-C), and says how far it got", async () => {
    await inOwnNamespace(async (own) => {
    for (let i = 0; i < 10; i++) await js.publish(own.subject("dlq.order-service.users.registered"), `{"n":${i}}`);
    const interrupt = new AbortController();
    const progress: number[] = [];
    const stopped = await replay({
      js, jsm, names: own, db: env.db, target: eventLogReplayTarget, fromSeq: 1, batchSize: 3, signal: interrupt.signal,
      onProgress: (read) => {
        progress.push(read);
        if (read === 3) interrupt.abort();
      },
    }).catch((err: unknown) => err);
    expect(stopped).toBeInstanceOf(ReplayInterruptedError);
    expect((stopped as Error).message).toBe("stopped after 3 of 10 events, as asked");
    expect(progress).toEqual([0, 3]);
    });
  });

  it("gives up with an error saying how far it got when NATS stops answering for good, instead of waiting for ever", async () => {
    // A server of its own: this test stops it for good.
    const server = await startOwnNatsServer();
    onTestFinished(() => server.dispose());
    const own = createNames(uniqueNamespace());
    const ownNc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    onTestFinished(() => ownNc.close());
    const ownJsm = await jetstreamManager(ownNc);
    await ensureStreams(ownJsm, own, ["USERS", "ORDERS", "SYSTEM", "DLQ"], { replicas: 1, maxAgeMs: 3600_000 });
    const ownJs = jetstream(ownNc);
    for (let i = 0; i < 10; i++) await ownJs.publish(own.subject("dlq.order-service.users.registered"), `{"n":${i}}`);
    const progress: number[] = [];
    const started = Date.now();
    const failed = await replay({
      js: ownJs, jsm: ownJsm, names: own, db: env.db, target: eventLogReplayTarget, fromSeq: 1, batchSize: 3, idleCheckMs: 100, unreachableAfterMs: 1500,
      // Once the first batch is in, only the message the client has buffered can still arrive.
      onProgress: (read) => void (progress.push(read), read === 3 && server.stop("SIGKILL")),
    }).catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toMatch(/^NATS did not answer for 2 s; stopped after \d+ of 10 events$/);
    expect(progress[1]).toBe(3);
    // Bounded: the give-up plus the ephemeral consumer's delete, which times out on its own.
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it("commits log rows in sequence order across writers, so the tail cannot pass a row that commits late", async () => {
    const row = (streamSeq: number) => toEventRow({ stream: "SYSTEM", streamSeq: 1_000_000 + streamSeq, streamTime: new Date(), subject: "system.test", data: Buffer.from("{}"), headers: {} });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let first!: () => void;
    const firstInserted = new Promise<void>((r) => (first = r));
    // Writer A inserts and keeps its transaction open; writer B (another process, say) must wait.
    const a = env.db.transaction(async (tx) => {
      await insertEvents(tx, [row(1)]);
      first();
      await held;
    });
    let b: Promise<unknown> | undefined;
    try {
      await firstInserted;
      let bDone = false;
      b = insertEvents(env.db, [row(2)]).finally(() => (bDone = true));
      await waitFor(async () => {
        const rows = (await env.db.execute(
          sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`,
        )) as unknown as { n: number }[];
        return rows[0]!.n > 0;
      }, { what: "the second writer waiting for the first" });
      // Without the lock B would have committed by now, ahead of A's earlier seq.
      expect(bDone).toBe(false);
      const visible = (await env.db.execute(sql`select count(*)::int as n from events where stream_seq = 1000002`)) as unknown as { n: number }[];
      expect(visible[0]!.n).toBe(0);
    } finally {
      // Also when a wait or an assertion above failed: A must not keep its transaction, nor B wait on it.
      release();
      await Promise.allSettled([a, b]);
    }
    await Promise.all([a, b]);
    const stored = await env.db.select({ seq: events.seq, streamSeq: events.streamSeq }).from(events).where(sql`${events.streamSeq} > 1000000`).orderBy(asc(events.seq));
    expect(stored.map((r) => r.streamSeq)).toEqual([1_000_001, 1_000_002]);
  });
});
