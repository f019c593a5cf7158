import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { sql } from "drizzle-orm";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { openDatabase, type Database, type Tx } from "../db/database.js";
import { createEvent } from "../events/create.js";
import { uuidv7 } from "../ids/index.js";
import { createLogger } from "../logger/index.js";
import { createNames } from "../nats/names.js";
import { ensureDurableConsumer, ensureStreams } from "../nats/streams.js";
import { createMessagingFixture, deleteNamespace, adminSql, tcpRelay, testNatsUrl, holdInTransaction, postgresRelay, publishRawHeaders, uniqueNamespace, waitFor, type TestDatabase, type MessagingFixture } from "../testing/index.js";
import { listDeadLetters } from "../cli/dead-letters.js";
import { DlqHeaders } from "./dead-letter.js";
import { createConsumer, type ConsumerOptions } from "./runner.js";
import { enqueueEvents } from "../outbox/enqueue.js";
import type { OutboxMessage } from "../outbox/handoff.js";

const namespace = uniqueNamespace();
const names = createNames(namespace);
const log = createLogger({ service: "runner-test", level: "silent" });
let nc: NatsConnection;
let database: Database;
let testDb: TestDatabase;

let fixture: MessagingFixture | undefined;
beforeAll(async () => {
  fixture = await createMessagingFixture({ dbPrefix: "of_runner", names, streams: ["USERS", "DLQ"], tables: ["inbox", "outbox"] });
  ({ nc, testDb, database } = fixture);
});
afterAll(() => fixture?.dispose());

/** A users.registered event, its data overridden by `data`. */
const registered = (data: Record<string, unknown> = {}) => {
  const id = uuidv7();
  return createEvent({ name: "users.registered", source: "/t", subject: id, data: { userId: id, email: `${id}@y.zz`, name: "n", registeredAt: new Date().toISOString(), ...data } });
};

/** A runner on this file's USERS stream for users.registered. */
const runnerFor = async (durable: string, o: Pick<ConsumerOptions, "handlers" | "retry"> & Partial<ConsumerOptions>) =>
  createConsumer({ js: jetstream(nc), jsm: await jetstreamManager(nc), db: database.db, names, log, stream: "USERS", filterSubject: "users.registered", durable, ...o, nc });

/** The last dead letter `durable` stored for users.registered, once there is one. */
const lastLetter = async (durable: string, what: string, timeoutMs?: number) => {
  const jsm = await jetstreamManager(nc);
  return waitFor(() => jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.subject(`dlq.${durable}.users.registered`) }).then((m) => m ?? undefined, () => undefined), { what, timeoutMs });
};

/** Until `durable` has nothing pending or unacknowledged: its messages acked or termed, not coming back. */
const settled = async (durable: string, what: string) => {
  const jsm = await jetstreamManager(nc);
  await waitFor(async () => {
    const info = await jsm.consumers.info(names.stream("USERS"), names.durable(durable));
    return info.num_ack_pending + info.num_pending === 0 || undefined;
  }, { what });
};

/**
 * An event the inbox of `durable` holds (an earlier delivery committed) whose acks never reached
 * the server: delivered `times` times without an outcome, so the next delivery is past a cap of
 * `times`. Creates the durable with a runner first (unbounded server-side max_deliver).
 */
async function appliedButUnacked(durable: string, o: Pick<ConsumerOptions, "handlers" | "retry"> & Partial<ConsumerOptions>, times: number) {
  await (await jetstreamManager(nc)).streams.purge(names.stream("USERS")); // only this event
  const consumer = await runnerFor(durable, o);
  await consumer.start();
  await consumer.stop();
  const event = registered();
  await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
  await database.db.execute(sql`insert into inbox (consumer, event_id, subject) values (${durable}, ${event.id}, 'users.registered')`);
  const raw = await jetstream(nc).consumers.get(names.stream("USERS"), names.durable(durable));
  for (let i = 1; i <= times; i++) (await raw.next({ expires: 5000 }))!.nak();
  return event;
}

describe("consumer runner", () => {
  it("dead-letters a message that keeps coming back without an outcome, instead of handling it forever", async () => {
    const retry = { delaysMs: [10], maxDeliver: 2, deliveryCap: 3 };
    const handled: string[] = [];
    const handlers = { "users.registered": async (_tx: unknown, e: { id: string }) => void handled.push(e.id) };
    const consumer = await runnerFor("cap-test", { retry, handlers });
    // Create the durable (unbounded server-side max_deliver), then stop the runner so a raw
    // client can play a process that dies on the message each time: deliver, never answer.
    await consumer.start();
    await consumer.stop();
    const jsm = await jetstreamManager(nc);
    const info = await jsm.consumers.info(names.stream("USERS"), names.durable("cap-test"));
    expect(info.config.max_deliver).toBe(-1);
    expect(info.config.backoff ?? []).toEqual([]);

    const id = uuidv7();
    const event = createEvent({ name: "users.registered", source: "/t", subject: id, data: { userId: id, email: "x@y.zz", name: "n", registeredAt: new Date().toISOString() } });
    await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
    const raw = await jetstream(nc).consumers.get(names.stream("USERS"), names.durable("cap-test"));
    for (let i = 1; i <= 3; i++) {
      const m = await raw.next({ expires: 5000 });
      expect(m?.info.deliveryCount).toBe(i);
      m!.nak();
    }

    const again = await runnerFor("cap-test", { retry, handlers });
    await again.start();
    try {
      const dlq = await waitFor(async () => {
        const s = await jsm.streams.info(names.stream("DLQ"));
        return s.state.messages === 1 ? s : undefined;
      }, { what: "a dead letter" });
      const letter = await jsm.streams.getMessage(names.stream("DLQ"), { seq: dlq.state.last_seq });
      expect(letter?.header.get(DlqHeaders.ErrorClass)).toBe("RedeliveryLimitError");
      expect(letter?.header.get(DlqHeaders.Deliveries)).toBe("4");
      expect(handled).toEqual([]);
    } finally {
      await again.stop();
    }
  });

  it("holds its events while the database is unreachable, however long, and applies them once it answers, instead of dead-lettering them", async () => {
    const retry = { delaysMs: [20, 50], maxDeliver: 3 };
    const relay = postgresRelay(testDb.url);
    await relay.listen();
    const viaRelay = await openDatabase(relay.viaRelay(testDb.url), { poolSize: 2 });
    // The runner's own account of the outage: it probes the database while it waits.
    const lines: { msg: string }[] = [];
    const destination = new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) });
    const probesFailed = () => lines.filter((l) => l.msg === "database still unreachable").length;
    const handlers = { "users.registered": async () => {} };
    const consumer = createConsumer({
      nc,
      js: jetstream(nc), jsm: await jetstreamManager(nc), db: viaRelay.db, names, log: createLogger({ service: "runner-test", level: "debug", destination }),
      stream: "USERS", filterSubject: "users.registered", durable: "outage-test", retry, handlers,
    });
    const jsm = await jetstreamManager(nc);
    const info = () => jsm.consumers.info(names.stream("USERS"), names.durable("outage-test"));
    await jsm.streams.purge(names.stream("USERS")); // only this test's event
    try {
      await consumer.start();
      await relay.close();
      const event = registered();
      await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
      // Retried on its delays (20, 50 ms), the event would have been delivered dozens of times
      // (and dead-lettered on the third) while the runner probes four times (250 ms to 2 s apart).
      await waitFor(() => probesFailed() >= 4, { what: "four failed probes of the database", timeoutMs: 30_000 });
      // Held in hand since the delivery that found the database gone: no other.
      expect((await info()).delivered.consumer_seq).toBe(1);
      expect((await info()).num_ack_pending).toBe(1);
      await relay.listen();
      await waitFor(async () => {
        const rows = (await database.db.execute(sql`select count(*)::int as n from inbox where consumer = 'outage-test' and event_id = ${event.id}`)) as unknown as { n: number }[];
        return rows[0]!.n === 1;
      }, { what: "the event applied once the database answers", timeoutMs: 30_000 });
      await waitFor(async () => (await info()).num_ack_pending === 0, { what: "its ack" });
      const letter = await jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.subject("dlq.outage-test.users.registered") });
      expect(letter).toBeNull();
      expect(lines.some((l) => l.msg === "database reachable again; consuming")).toBe(true);
    } finally {
      await consumer.stop();
      await relay.close();
      await viaRelay.close();
    }
  });

  it("holds its events while the database is read-only (a failover to a standby), and applies them once it takes writes again", async () => {
    const retry = { delaysMs: [20, 50], maxDeliver: 3 };
    const lines: { msg: string }[] = [];
    const destination = new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) });
    const jsm = await jetstreamManager(nc);
    const info = () => jsm.consumers.info(names.stream("USERS"), names.durable("read-only-test"));
    await jsm.streams.purge(names.stream("USERS"));
    await adminSql(`alter database "${testDb.name}" set default_transaction_read_only = on`);
    const readOnly = await openDatabase(testDb.url, { poolSize: 2 }); // its sessions start read-only
    const consumer = createConsumer({
      nc,
      js: jetstream(nc), jsm, db: readOnly.db, names, log: createLogger({ service: "runner-test", level: "debug", destination }),
      stream: "USERS", filterSubject: "users.registered", durable: "read-only-test", retry, handlers: { "users.registered": async () => {} },
    });
    try {
      await consumer.start();
      const event = registered();
      await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
      // On its retry delays it would have been dead-lettered within a second.
      await waitFor(() => lines.filter((l) => l.msg === "database still unreachable").length >= 4, { what: "four probes finding it read-only", timeoutMs: 30_000 });
      expect((await info()).delivered.consumer_seq).toBe(1);
      await adminSql(`alter database "${testDb.name}" reset default_transaction_read_only`);
      // The pool's sessions keep the setting they started with: end them, as a failover does.
      await adminSql(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${testDb.name}'`);
      await waitFor(async () => {
        const rows = (await database.db.execute(sql`select count(*)::int as n from inbox where consumer = 'read-only-test' and event_id = ${event.id}`)) as unknown as { n: number }[];
        return rows[0]!.n === 1;
      }, { what: "the event applied once the database takes writes", timeoutMs: 30_000 });
      await waitFor(async () => (await info()).num_ack_pending === 0, { what: "its ack" });
      expect(await jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.subject("dlq.read-only-test.users.registered") })).toBeNull();
    } finally {
      await consumer.stop();
      await readOnly.close();
      await adminSql(`alter database "${testDb.name}" reset default_transaction_read_only`);
    }
  });

  it("stops keeping alive an event whose query hangs (a blackholed connection), so another replica gets it and applies it once", async () => {
    const retry = { delaysMs: [20], maxDeliver: 5 };
    const relay = postgresRelay(testDb.url);
    await relay.listen();
    const stuckDb = await openDatabase(relay.viaRelay(testDb.url));
    const applied: string[] = [];
    const handlers = { "users.registered": async (_tx: Tx, e: { id: string }) => void applied.push(e.id) };
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(names.stream("USERS")); // only this test's event
    const timing = { ackWaitMs: 3000, maxHandlingMs: 2000 };
    const stuck = await runnerFor("hung-test", { retry, handlers, db: stuckDb.db, ...timing });
    const other = await runnerFor("hung-test", { retry, handlers, ...timing });
    try {
      await stuck.start();
      // The network to the database goes silent: the query waits, nothing fails, a probe would hang too.
      relay.stall();
      const event = registered();
      await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
      await waitFor(async () => (await jsm.consumers.info(names.stream("USERS"), names.durable("hung-test"))).num_ack_pending === 1, { what: "the event in the stuck runner's hands" });
      await other.start();
      await waitFor(() => applied.includes(event.id), { what: "the event applied by the other replica", timeoutMs: 15_000 });
      // The stuck one's transaction goes through once the network carries its bytes again, and
      // finds the event in the inbox.
      relay.resume();
      await waitFor(async () => (await jsm.consumers.info(names.stream("USERS"), names.durable("hung-test"))).num_ack_pending === 0, { what: "every delivery settled" });
      await stuck.stop();
      expect(applied).toEqual([event.id]);
      const rows = (await database.db.execute(sql`select count(*)::int as n from inbox where consumer = 'hung-test'`)) as unknown as { n: number }[];
      expect(rows[0]!.n).toBe(1);
    } finally {
      relay.resume();
      await stuck.stop();
      await other.stop();
      await relay.close();
      await stuckDb.close();
    }
  });

  it("counts a delivery whose session the server closed over the work itself, not an outage, against the budget", async () => {
    // A session killed by pg_terminate_backend while the handler runs: the error is a lost
    // connection, but the database answers the probe, so the event is dead-lettered after
    // maxDeliver deliveries instead of waiting for an outage that is not there.
    const retry = { delaysMs: [20], maxDeliver: 2 };
    const handlers = {
      "users.registered": async (tx: Tx) => {
        await tx.execute(sql`select pg_terminate_backend(pg_backend_pid())`);
      },
    };
    // Its own pool: the sessions it kills are not the other tests'.
    const own = await openDatabase(testDb.url);
    const consumer = await runnerFor("killed-session-test", { retry, handlers, db: own.db });
    const jsm = await jetstreamManager(nc);
    try {
      await consumer.start();
      const event = registered();
      await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
      const letter = await waitFor(() => jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.subject("dlq.killed-session-test.users.registered") }).then((m) => m ?? undefined), {
        what: "the event dead-lettered",
      });
      expect(letter.header.get(DlqHeaders.Deliveries)).toBe("2");
    } finally {
      await consumer.stop();
      await own.close();
    }
  });

  it("acks an event it applied already when it comes back past the cap, instead of dead-lettering it", async () => {
    const retry = { delaysMs: [10], maxDeliver: 2, deliveryCap: 2 };
    const handled: string[] = [];
    const handlers = { "users.registered": async (_tx: unknown, e: { id: string }) => void handled.push(e.id) };
    const jsm = await jetstreamManager(nc);
    await appliedButUnacked("applied-cap-test", { retry, handlers }, 2);
    const again = await runnerFor("applied-cap-test", { retry, handlers });
    await again.start();
    try {
      await waitFor(async () => (await jsm.consumers.info(names.stream("USERS"), names.durable("applied-cap-test"))).num_ack_pending === 0, { what: "the third delivery settled" });
      const letter = await jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.subject("dlq.applied-cap-test.users.registered") });
      expect(letter).toBeNull();
      expect(handled).toEqual([]);
    } finally {
      await again.stop();
    }
  });

  it("asks again, rather than dead-letter, an event past the cap whose inbox lookup cannot be answered (a lock), and acks it once it can", async () => {
    const retry = { delaysMs: [10], maxDeliver: 2, deliveryCap: 2 };
    const jsm = await jetstreamManager(nc);
    const own = await openDatabase(testDb.url, { statementTimeoutMs: 200 });
    const handlers = { "users.registered": async () => {} };
    await appliedButUnacked("locked-cap-test", { retry, handlers, db: own.db }, 2);
    // The inbox is locked: the lookup past the cap times out (a statement timeout, not an outage).
    const lock = await holdInTransaction(database.db, sql`lock table inbox in access exclusive mode`);
    const again = await runnerFor("locked-cap-test", { retry, handlers, db: own.db });
    const info = () => jsm.consumers.info(names.stream("USERS"), names.durable("locked-cap-test"));
    try {
      await again.start();
      await waitFor(async () => (await info()).delivered.consumer_seq >= 5, { what: "lookups that could not be answered" });
      await lock.release();
      await waitFor(async () => (await info()).num_ack_pending === 0, { what: "the event acked once the lookup answers" });
      const letter = await jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.subject("dlq.locked-cap-test.users.registered") });
      expect(letter).toBeNull();
    } finally {
      await lock.release().catch(() => {});
      await again.stop();
      await own.close();
    }
  });

  it("hands the relay what its handlers wrote to the outbox, once their transaction has committed, and each handler its message's trace", async () => {
    const handed: OutboxMessage[] = [];
    const traces: (string | undefined)[] = [];
    const consumer = await runnerFor("handoff-test", {
      retry: { delaysMs: [10], maxDeliver: 2 },
      handlers: {
        "users.registered": async (tx, e, context) => {
          traces.push(context === undefined ? "no context" : context.traceparent);
          const now = new Date();
          const order = createEvent({ name: "orders.created", source: "/t", subject: e.data.userId, time: now, data: { orderId: uuidv7(), userId: e.data.userId, status: "created", source: "registration", items: [], totalCents: 0, createdAt: now.toISOString() } });
          await enqueueEvents(tx, [{ subject: "orders.created", event: order }]);
        },
      },
      onCommitted: (messages) => handed.push(...messages),
    });
    await consumer.start();
    try {
      for (let i = 0; i < 3; i++) {
        const id = uuidv7();
        const event = createEvent({ name: "users.registered", source: "/t", subject: id, data: { userId: id, email: `h${i}@y.zz`, name: "n", registeredAt: new Date().toISOString() } });
        const h = natsHeaders();
        h.set("traceparent", `00-${"ab".repeat(16)}-${String(i + 1).padStart(16, "0")}-01`);
        await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id, headers: h });
      }
      await waitFor(() => handed.length >= 3, { what: "three hand-overs" });
      // Every call had its context, a batch applied in one transaction included (the stream also
      // holds earlier tests' events, published without a trace).
      expect(traces).toEqual(expect.arrayContaining([1, 2, 3].map((i) => `00-${"ab".repeat(16)}-${String(i).padStart(16, "0")}-01`)));
      expect(traces).not.toContain("no context");
      const rows = (await database.db.execute(sql`select event_id, payload from outbox where subject = 'orders.created' order by seq`)) as unknown as { event_id: string; payload: string }[];
      expect(handed.map((m) => ({ event_id: m.eventId, payload: m.payload }))).toEqual([...rows]);
      expect(handed.every((m) => m.subject === "orders.created")).toBe(true);
    } finally {
      await consumer.stop();
    }
  });
  it("dead-letters an event whose data the database refuses on its first delivery, without waiting out the retries", async () => {
    const jsm = await jetstreamManager(nc);
    const handlers = { "users.registered": async (tx: Tx, e: { data: { email: string } }) => void (await tx.execute(sql`select ${e.data.email}::int`)) };
    const consumer = await runnerFor("refused-test", { retry: { delaysMs: [60_000], maxDeliver: 3 }, handlers });
    await consumer.start();
    try {
      // A valid event whose value this handler's statement cannot take (22P02).
      const event = registered();
      await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
      const letter = await waitFor(() => jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.subject("dlq.refused-test.users.registered") }).then((m) => m ?? undefined, () => undefined), { what: "the dead letter" });
      expect(letter.header.get(DlqHeaders.Deliveries)).toBe("1");
      expect(letter.header.get(DlqHeaders.ErrorMessage)).toMatch(/^22P02: /);
    } finally {
      await consumer.stop();
    }
  });

  it("applies an event whose NATS headers nats.js cannot decode (a key with a space), and the events behind it; its dead letter stays listable", async () => {
    const jsm = await jetstreamManager(nc);
    const handled: string[] = [];
    const consumer = await runnerFor("bad-header-test", { retry: { delaysMs: [10], maxDeliver: 2 }, handlers: { "users.registered": async (_tx: unknown, e: { id: string }) => void handled.push(e.id) } });
    await consumer.start();
    try {
      const planted = registered();
      await publishRawHeaders(names.subject("users.registered"), ["Bad Key: x", "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"], JSON.stringify(planted));
      const after = registered();
      await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(after), { msgID: after.id });
      await waitFor(() => (handled.includes(planted.id) && handled.includes(after.id)) || undefined, { what: "both events applied" });
      // Invalid, and with such headers: dead-lettered (headers not copied, a note says so), and `dlq list` still reads the DLQ.
      await publishRawHeaders(names.subject("users.registered"), ["Bad Key: x"], "{not json");
      const letters = await waitFor(async () => {
        const all = await listDeadLetters({ js: jetstream(nc), jsm, names });
        return all.some((d) => d.consumer === "bad-header-test") ? all : undefined;
      }, { what: "the dead letter listed" });
      const mine = letters.find((d) => d.consumer === "bad-header-test")!;
      expect(mine.errorClass).toBe("InvalidEventError");
      expect(Object.fromEntries(mine.headers)[DlqHeaders.Note]).toMatch(/could not be decoded/);
    } finally {
      await consumer.stop();
    }
  });

  it("dead-letters a message too big to copy with the dead-letter headers, without its payload, instead of retrying it for ever", async () => {
    // Only this message: a new durable gets every earlier test's messages too, and the letter of
    // one of them, retried, could be stored after this one's and be taken for it (a CI flake).
    await (await jetstreamManager(nc)).streams.purge(names.stream("USERS"));
    const consumer = await runnerFor("too-big-test", { retry: { delaysMs: [10], maxDeliver: 2 }, handlers: { "users.registered": async () => {} } });
    await consumer.start();
    try {
      const size = nc.info!.max_payload - 200; // fits as published, not with ~10 more headers
      await jetstream(nc).publish(names.subject("users.registered"), new Uint8Array(size).fill(0x78));
      const letter = await lastLetter("too-big-test", "the dead letter");
      // A failure shows the letter's headers: the way to tell which path stored it.
      const seen = JSON.stringify({ seq: letter.seq, bytes: letter.data.length, headers: Object.fromEntries(letter.header.keys().map((k) => [k, letter.header.get(k)])) });
      expect(letter.header.get(DlqHeaders.PayloadOmitted), seen).toBe(String(size));
      expect(letter.data.length, seen).toBe(0);
      await settled("too-big-test", "the original acked (termed), not redelivered");
    } finally {
      await consumer.stop();
    }
  });

  it("dead-letters a message published with JetStream directives (an expected stream) instead of retrying it for ever", async () => {
    // Copied as they are, the original's Nats-Expected-Stream would tell the DLQ to refuse the
    // letter, on every delivery: the message would come back for ever and block its consumer.
    await (await jetstreamManager(nc)).streams.purge(names.stream("USERS")); // only this message, as above
    const consumer = await runnerFor("directives-test", { retry: { delaysMs: [10], maxDeliver: 2 }, handlers: { "users.registered": async () => {} } });
    await consumer.start();
    try {
      await jetstream(nc).publish(names.subject("users.registered"), "{not json", { expect: { streamName: names.stream("USERS") } });
      const letter = await lastLetter("directives-test", "the dead letter", 15_000);
      expect(Buffer.from(letter.data).toString()).toBe("{not json");
      expect(letter.header.get("Nats-Expected-Stream")).toBe("");
      expect(letter.header.get(`${DlqHeaders.OriginalPrefix}Nats-Expected-Stream`)).toBe(names.stream("USERS"));
      await settled("directives-test", "the original termed");
    } finally {
      await consumer.stop();
    }
  });

  it("dead-letters a message the DLQ refuses for good (over its max_msg_size) with what it takes: the headers, or the DLQ's own alone", async () => {
    const jsm = await jetstreamManager(nc);
    // An operator's limit on the DLQ: a letter of these payloads or headers is refused (400).
    await jsm.streams.update(names.stream("DLQ"), { max_msg_size: 2048 });
    onTestFinished(async () => void (await jsm.streams.update(names.stream("DLQ"), { max_msg_size: -1 })));
    const letterOf = async (durable: string, headers: Record<string, string>, payload: string) => {
      await jsm.streams.purge(names.stream("USERS")); // only this message, as above
      const consumer = await runnerFor(durable, { retry: { delaysMs: [10], maxDeliver: 2 }, handlers: { "users.registered": async () => {} } });
      await consumer.start();
      try {
        const h = natsHeaders();
        for (const [k, v] of Object.entries(headers)) h.set(k, v);
        await jetstream(nc).publish(names.subject("users.registered"), payload, { headers: h });
        const letter = await lastLetter(durable, "the dead letter");
        await settled(durable, "the original termed");
        return { letter, seen: JSON.stringify(Object.fromEntries(letter.header.keys().map((k) => [k, letter.header.get(k)]))) };
      } finally {
        await consumer.stop();
      }
    };
    // Too big with its payload: the letter keeps the original's headers (a trace, say), not the payload.
    const payload = `{not json ${"x".repeat(3000)}`;
    const big = await letterOf("refused-payload-test", { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }, payload);
    expect(big.letter.data.length, big.seen).toBe(0);
    expect(big.letter.header.get(DlqHeaders.PayloadOmitted), big.seen).toBe(String(payload.length));
    expect(big.letter.header.get("traceparent"), big.seen).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect(big.letter.header.get(DlqHeaders.Note), big.seen).toBe("");
    // Too big even without it (its headers): the DLQ's own headers alone, and a note quoting the refusal.
    const heavy = await letterOf("refused-headers-test", { "X-Original": "h".repeat(3000) }, "{not json");
    expect(heavy.letter.data.length, heavy.seen).toBe(0);
    expect(heavy.letter.header.get(DlqHeaders.PayloadOmitted), heavy.seen).toBe("9");
    expect(heavy.letter.header.get(DlqHeaders.Note), heavy.seen).toMatch(/^the DLQ refused the letter with the original's headers \(.*maximum.*\); they are not copied$/);
    expect(heavy.letter.header.get("X-Original"), heavy.seen).toBe("");
    expect(heavy.letter.header.get(DlqHeaders.ErrorClass), heavy.seen).toBe("InvalidEventError");
    expect(heavy.letter.header.get(DlqHeaders.Stream), heavy.seen).toBe(names.stream("USERS"));
  });

  it("creates the DLQ again when it was deleted, and stores the dead letter there", async () => {
    const jsm = await jetstreamManager(nc);
    let restores = 0;
    const restoreStreams = async () => {
      restores++;
      await ensureStreams(jsm, names, ["USERS", "DLQ"], { replicas: 1, maxAgeMs: 3600_000 });
    };
    await jsm.streams.purge(names.stream("USERS")); // only this test's message
    const consumer = await runnerFor("lost-dlq-test", { retry: { delaysMs: [10], maxDeliver: 2 }, handlers: { "users.registered": async () => {} }, restoreStreams });
    await consumer.start();
    try {
      await jsm.streams.delete(names.stream("DLQ"));
      await jetstream(nc).publish(names.subject("users.registered"), "{lost dlq");
      const letter = await lastLetter("lost-dlq-test", "the dead letter in a recreated DLQ");
      expect(Buffer.from(letter.data).toString()).toBe("{lost dlq");
      expect(restores).toBeGreaterThan(0);
    } finally {
      await consumer.stop();
      // The rest of the file expects the DLQ, whatever happened here.
      await ensureStreams(jsm, names, ["DLQ"], { replicas: 1, maxAgeMs: 3600_000 });
    }
  });

  it("stores the dead letter under an id of its own when someone took its predictable Nats-Msg-Id first", async () => {
    const jsm = await jetstreamManager(nc);
    const opts = { retry: { delaysMs: [10], maxDeliver: 2 }, handlers: { "users.registered": async () => {} } };
    // The durable exists, so the message waits for the runner while someone takes its letter's id
    // (its stream, position and stored time, read here through a consumer of its own).
    const creator = await runnerFor("seeded-test", opts);
    await creator.start();
    await creator.stop();
    const ack = await jetstream(nc).publish(names.subject("users.registered"), "{not json");
    const next = ack.seq;
    await jsm.consumers.add(names.stream("USERS"), { durable_name: names.durable("seeded-peek"), ack_policy: "explicit" as never, deliver_policy: "by_start_sequence" as never, opt_start_seq: next });
    const peeked = (await (await jetstream(nc).consumers.get(names.stream("USERS"), names.durable("seeded-peek"))).next({ expires: 5000 }))!;
    expect(peeked.seq).toBe(next);
    const seeded = `dlq:seeded-test:${names.stream("USERS")}:${next}:${peeked.timestampNanos}`;
    peeked.ack();
    await jsm.consumers.delete(names.stream("USERS"), names.durable("seeded-peek"));
    await jetstream(nc).publish(names.subject("dlq.seeded-test.users.registered"), "{}", { msgID: seeded });
    const consumer = await runnerFor("seeded-test", opts);
    await consumer.start();
    try {
      const letter = await waitFor(async () => {
        const all = await listDeadLetters({ js: jetstream(nc), jsm, names });
        return all.find((d) => d.consumer === "seeded-test" && d.originalSeq === next);
      }, { what: "the real dead letter" });
      expect(Buffer.from(letter.payload).toString()).toBe("{not json");
      expect(letter.errorClass).toBe("InvalidEventError");
      // The id it wanted was the one taken (stream, position, stored time), so it took one of its own.
      const stored = await jsm.streams.getMessage(names.stream("DLQ"), { seq: letter.seq });
      expect(stored!.header.get("Nats-Msg-Id")).toMatch(new RegExp(`^${seeded}:[0-9a-f-]{36}$`));
    } finally {
      await consumer.stop();
    }
  });

  it("stops between the events of a failed batch and hands the rest back, which a new runner applies once", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(names.stream("USERS"));
    await database.db.execute(sql`create table applied (id text primary key)`);
    const events = Array.from({ length: 6 }, () => registered());
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((r) => (releaseFirst = r));
    let stopRequested!: () => void;
    const stopping = new Promise<void>((r) => (stopRequested = r));
    const calls = new WeakMap<Tx, number>();
    const handlers = {
      "users.registered": async (tx: Tx, e: { id: string }) => {
        // The first event waits until all six are in the runner's hands, so the rest arrive as one batch.
        if (e.id === events[0]!.id) await firstHeld;
        // A transaction that applies more than one event fails: a batch goes one by one, slowly.
        const n = (calls.get(tx) ?? 0) + 1;
        calls.set(tx, n);
        if (n > 1) throw new Error("the batch fails");
        // One by one, the third event is still in hand when stop() is called.
        if (e.id === events[2]!.id) await stopping;
        await tx.execute(sql`insert into applied values (${e.id})`);
      },
    };
    const count = async () => ((await database.db.execute(sql`select count(*)::int as n from applied`)) as unknown as { n: number }[])[0]!.n;
    const retry = { delaysMs: [10], maxDeliver: 5 };
    const consumer = await runnerFor("stop-test", { retry, handlers });
    try {
      await consumer.start();
      for (const event of events) await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
      await waitFor(async () => (await jsm.consumers.info(names.stream("USERS"), names.durable("stop-test"))).num_ack_pending === events.length, { what: "all six delivered" });
      releaseFirst();
      await waitFor(async () => (await count()) >= 2, { what: "the first events applied" });
      const stopped = consumer.stop();
      stopRequested();
      await stopped;
    } finally {
      // Also when a wait above failed: no handler stays parked in its transaction, and the runner
      // is stopped before afterAll drops the database (stop() again is a no-op once it has run).
      releaseFirst();
      stopRequested();
      await consumer.stop();
    }
    // It did not work through the rest of the failed batch before returning.
    expect(await count()).toBeLessThan(events.length);
    const again = await runnerFor("stop-test", { retry, handlers });
    await again.start();
    try {
      await waitFor(async () => (await count()) === events.length, { what: "every event applied" });
      const rows = (await database.db.execute(sql`select id from applied order by id`)) as unknown as { id: string }[];
      expect(rows.map((r) => r.id)).toEqual(events.map((e) => e.id).sort());
    } finally {
      await again.stop();
    }
  });

  const OWN_STREAMS = { replicas: 1, maxAgeMs: 3600_000 };
  /** A namespace of the test's own with USERS and DLQ, deleted after it. */
  const ownNamespace = async () => {
    const own = createNames(uniqueNamespace());
    onTestFinished(() => deleteNamespace(nc, own.namespace));
    await ensureStreams(await jetstreamManager(nc), own, ["USERS", "DLQ"], OWN_STREAMS);
    return own;
  };

  /**
   * A runner on `own`'s USERS whose handler stops at a gate for `held`: `inHandler` resolves
   * once it is there, `release` lets it go. `lines` is its log; stopped after the test.
   */
  const gatedRunner = (own: ReturnType<typeof createNames>, via: NatsConnection, durable: string, held: { id: string }, o: Partial<ConsumerOptions> = {}) => {
    const lines: { msg: string }[] = [];
    const destination = new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => (entered = r));
    return (async () => {
      const consumer = createConsumer({
        nc: via, js: jetstream(via), jsm: await jetstreamManager(via), db: database.db, names: own, log: createLogger({ service: "runner-test", level: "debug", destination }),
        stream: "USERS", filterSubject: "users.registered", durable, retry: { delaysMs: [100], maxDeliver: 5 },
        handlers: { "users.registered": async (_tx, e) => void (e.id === held.id && (entered(), await gate)) },
        ...o,
      });
      onTestFinished(async () => {
        release();
        await consumer.stop();
      });
      await consumer.start();
      const logged = (msg: string) => waitFor(() => lines.some((l) => l.msg === msg) || undefined, { what: `"${msg}" logged` });
      return { consumer, lines, logged, release, inHandler };
    })();
  };

  it("leaves the acks of messages from a stream deleted and created again unsent, also those still in nats.js's buffer, so they cannot settle the new messages at their sequences that another replica holds", async () => {
    const own = await ownNamespace();
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const old = [registered(), registered(), registered()];
    // One event per batch: while the first is in its handler, the second waits in the runner's
    // queue and the third in nats.js's buffer, received but not yet handed out.
    const runner = await gatedRunner(own, nc, "stale-ack", old[0]!, { maxBatch: 1 });
    for (const e of old) await js.publish(own.subject("users.registered"), JSON.stringify(e));
    await runner.inHandler;
    await waitFor(async () => (await jsm.consumers.info(own.stream("USERS"), own.durable("stale-ack"))).num_ack_pending === 3 || undefined, { what: "all three delivered" });
    // The stream is deleted and created again (by hand, or by a replica after the broker lost its
    // store) while this runner holds stream sequences 1-3; new events are stored at 1-3, and
    // another replica holds them.
    await jsm.streams.delete(own.stream("USERS"));
    await runner.logged("consumer stalled; recreating");
    await ensureStreams(jsm, own, ["USERS"], OWN_STREAMS);
    await ensureDurableConsumer(jsm, own, { stream: "USERS", durable: "stale-ack", filterSubject: "users.registered", ackWaitMs: 30_000 });
    for (const e of [registered(), registered(), registered()]) await js.publish(own.subject("users.registered"), JSON.stringify(e));
    const held: JsMsg[] = [];
    for await (const m of await (await js.consumers.get(own.stream("USERS"), own.durable("stale-ack"))).fetch({ max_messages: 3, expires: 5000 })) held.push(m);
    expect(held.map((m) => m.seq)).toEqual([1, 2, 3]);
    // The old events are handled; their acks would name sequences 1-3 of the same stream and durable.
    runner.release();
    await runner.logged("leaving messages received before a lost connection or a vanished stream to ack_wait: the stream may be a new one");
    await waitFor(async () => ((await database.db.execute(sql`select 1 from inbox where consumer = 'stale-ack'`)) as unknown as unknown[]).length === 3 || undefined, { what: "the old events handled" });
    await runner.consumer.stop();
    await nc.flush();
    const info = await jsm.consumers.info(own.stream("USERS"), own.durable("stale-ack"));
    expect(info.num_ack_pending).toBe(3); // the new events are still the other replica's to settle
    for (const m of held) m.ack();
  });

  it("acks a message in hand across a lost connection at once when the stream is the same one, rather than leaving it to ack_wait", async () => {
    const own = await ownNamespace();
    const jsm = await jetstreamManager(nc);
    const relay = tcpRelay({ host: "127.0.0.1", port: Number(new URL(testNatsUrl()).port || 4222) });
    await relay.listen();
    onTestFinished(() => relay.close());
    const viaRelay = await connect({ servers: `127.0.0.1:${relay.port}`, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    onTestFinished(() => viaRelay.close());
    const event = registered();
    const runner = await gatedRunner(own, viaRelay, "reconnect-ack", event, { ackWaitMs: 120_000 });
    await jetstream(nc).publish(own.subject("users.registered"), JSON.stringify(event));
    await runner.inHandler;
    const reconnected = (async () => {
      for await (const s of viaRelay.status()) if (s.type === "reconnect") return;
    })();
    await relay.close();
    await relay.listen();
    await reconnected;
    runner.release();
    // Far sooner than the 120 s ack_wait after which an unsent ack would have it redelivered.
    await waitFor(async () => (await jsm.consumers.info(own.stream("USERS"), own.durable("reconnect-ack"))).num_ack_pending === 0 || undefined, { what: "the event acked", timeoutMs: 15_000 });
    expect(runner.lines.filter((l) => l.msg.startsWith("leaving messages received before"))).toEqual([]);
  });
});
