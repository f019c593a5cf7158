import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { sql } from "drizzle-orm";
import { createLogger } from "../logger/index.js";
import { createEvent } from "../events/create.js";
import { createNames } from "../nats/names.js";
import { ensureStreams } from "../nats/streams.js";
import { outbox } from "../db/tables.js";
import { openDatabase, type Database } from "../db/database.js";
import { uuidv7 } from "../ids/index.js";
import { createMessagingFixture, connectTestNats, startOwnNatsServer, uniqueNamespace, waitFor, type MessagingFixture } from "../testing/index.js";
import { enqueueEvents } from "./enqueue.js";
import { takeQueued, type OutboxMessage } from "./handoff.js";
import type { Tx } from "../db/database.js";
import { createOutboxRelay } from "./relay.js";
import { createAckedPublisher } from "../nats/acked-publisher.js";

const log = createLogger({ service: "relay-test", level: "silent" });
let nc: NatsConnection;
let database: Database;
const namespace = uniqueNamespace();
const names = createNames(namespace);

let fixture: MessagingFixture | undefined;
beforeAll(async () => {
  fixture = await createMessagingFixture({ dbPrefix: "of_relay", names, streams: ["USERS"], tables: ["outbox"] });
  ({ nc, database } = fixture);
});
afterAll(() => fixture?.dispose());
// Tests assert the outbox's exact contents: what one leaves behind, even when it fails, must not
// reach the next.
afterEach(() => database?.db.delete(outbox));

/** Counts publish calls per relay, to show that no row was published twice (dedupe would hide it). */
function countingJs(js: JetStreamClient, counter: Map<string, number>): JetStreamClient {
  return aroundPublish(js, (publish, subject, payload, opts) => {
    counter.set(opts.msgID, (counter.get(opts.msgID) ?? 0) + 1);
    return publish(subject, payload, opts);
  });
}

type Publish = (subject: string, payload: string, opts: { msgID: string }) => Promise<unknown>;

/** The client with its publish wrapped: `around` gets the real one and the call's arguments. */
function aroundPublish(js: JetStreamClient, around: (publish: Publish, ...args: Parameters<Publish>) => Promise<unknown>): JetStreamClient {
  return new Proxy(js, {
    get(target, prop, receiver) {
      if (prop !== "publish") return Reflect.get(target, prop, receiver);
      const publish = target.publish.bind(target) as unknown as Publish;
      return (...args: Parameters<Publish>) => around(publish, ...args);
    },
  });
}

/** A users.registered event to enqueue, with the given name. */
const registration = (name: string) => {
  const id = uuidv7();
  return { subject: "users.registered", event: createEvent({ name: "users.registered", source: "/t", subject: id, data: { userId: id, email: "r@b.co", name, registeredAt: new Date().toISOString() } }) };
};

/** Enqueues events in one transaction and returns what it queued for the relay. */
async function enqueueAndTake(events: ReturnType<typeof registration>[]): Promise<OutboxMessage[]> {
  let queued: OutboxMessage[] = [];
  await database.db.transaction(async (tx) => {
    await enqueueEvents(tx, events);
    queued = takeQueued(tx as Tx);
  });
  return queued;
}

describe("outbox relay", () => {
  it("publishes each event exactly once when two relays run at the same time", async () => {
    const total = 400;
    const events = Array.from({ length: total }, () => {
      const id = uuidv7();
      return { subject: "users.registered", event: createEvent({ name: "users.registered", source: "/t", subject: id, data: { userId: id, email: "a@b.co", name: "n", registeredAt: new Date().toISOString() } }) };
    });
    for (let i = 0; i < total; i += 100) await database.db.transaction((tx) => enqueueEvents(tx, events.slice(i, i + 100)));

    const publishes = new Map<string, number>();
    const js = countingJs(jetstream(nc), publishes);
    const relays = [1, 2].map(() => createOutboxRelay({ db: database.db, js, names, log, batchSize: 25, pollMs: 50, graceMs: 0 }));
    onTestFinished(async () => void (await Promise.all(relays.map((r) => r.stop())))); // also when an assertion fails first
    relays.forEach((r) => r.start());
    await waitFor(async () => {
      const [{ n }] = (await database.db.select({ n: sql<number>`count(*)::int` }).from(outbox)) as [{ n: number }];
      return n === 0;
    }, { what: "an empty outbox" });
    await Promise.all(relays.map((r) => r.stop()));

    const info = await (await jetstreamManager(nc)).streams.info(names.stream("USERS"));
    console.log(`relay: enqueued=${total} publishes=${[...publishes.values()].reduce((a, b) => a + b, 0)} stored=${info.state.messages}`);
    expect(info.state.messages).toBe(total);
    expect(publishes.size).toBe(total);
    expect([...publishes.values()].every((n) => n === 1)).toBe(true);
  });

  it("republishes after a crash between JetStream's ack and the commit, and the stream keeps one copy", async () => {
    const id = uuidv7();
    const event = createEvent({ name: "users.registered", source: "/t", subject: id, data: { userId: id, email: "c@b.co", name: "crash", registeredAt: new Date().toISOString() } });
    await database.db.transaction((tx) => enqueueEvents(tx, [{ subject: "users.registered", event }]));
    const jsm = await jetstreamManager(nc);
    const before = (await jsm.streams.info(names.stream("USERS"))).state.messages;

    // The first relay "crashes" right after JetStream acknowledged: its transaction never commits.
    const crashing = aroundPublish(jetstream(nc), async (publish, ...args) => {
      await publish(...args);
      throw new Error("process died before marking the row");
    });
    await expect(createOutboxRelay({ db: database.db, js: crashing, names, log }).relayOnce({ all: true })).rejects.toThrow(/died/);
    expect((await jsm.streams.info(names.stream("USERS"))).state.messages).toBe(before + 1);

    // On restart the row is still in the outbox, so it goes out again; Nats-Msg-Id dedupes it.
    expect(await createOutboxRelay({ db: database.db, js: jetstream(nc), names, log }).relayOnce({ all: true })).toBe(1);
    const after = await jsm.streams.info(names.stream("USERS"));
    console.log(`relay crash: publishes=2 stored=${after.state.messages - before}`);
    expect(after.state.messages).toBe(before + 1);
  });

  it("keeps the rows JetStream refused and removes the ones it acknowledged, in outbox order", async () => {
    const batch = ["a", "refused", "c", "d"].map(registration);
    await database.db.transaction((tx) => enqueueEvents(tx, batch));
    const refusedId = batch[1]!.event.id;
    const sent: string[] = [];
    const picky = aroundPublish(jetstream(nc), async (publish, subject, payload, opts) => {
      sent.push(opts.msgID);
      if (opts.msgID === refusedId) throw new Error("refused by the test");
      return publish(subject, payload, opts);
    });
    expect(await createOutboxRelay({ db: database.db, js: picky, names, log }).relayOnce({ all: true })).toBe(3);
    expect(sent).toEqual(batch.map((b) => b.event.id));
    const left = (await database.db.select({ eventId: outbox.eventId }).from(outbox)) as { eventId: string }[];
    expect(left.map((r) => r.eventId)).toEqual([refusedId]);
    // The next pass publishes it and the outbox is empty.
    expect(await createOutboxRelay({ db: database.db, js: jetstream(nc), names, log }).relayOnce({ all: true })).toBe(1);
    expect(await database.db.select({ eventId: outbox.eventId }).from(outbox)).toEqual([]);
  });

  it("publishes handed-over messages at once and deletes their rows; a failed one is left to the poll, which waits out the grace period", async () => {
    const made = ["h1", "h2", "h3"].map(registration);
    const queued = await enqueueAndTake(made);
    expect(queued.map((m) => m.eventId)).toEqual(made.map((m) => m.event.id));
    const failing = made[1]!.event.id;
    const publishes = new Map<string, number>();
    const flaky = aroundPublish(countingJs(jetstream(nc), publishes), (publish, subject, payload, opts) =>
      opts.msgID === failing && !publishes.has(`failed:${failing}`)
        ? (publishes.set(`failed:${failing}`, 1), Promise.reject(new Error("NATS hiccup")))
        : publish(subject, payload, opts),
    );
    const relay = createOutboxRelay({ db: database.db, js: flaky, names, log, pollMs: 50, graceMs: 1500 });
    onTestFinished(() => relay.stop()); // also when an assertion fails before the stop below
    const remaining = async () => ((await database.db.select({ eventId: outbox.eventId }).from(outbox)) as { eventId: string }[]).map((r) => r.eventId);
    const handedAt = Date.now();
    relay.handOff(queued);
    await waitFor(async () => (await remaining()).length === 1, { what: "the acknowledged rows deleted" });
    expect(await remaining()).toEqual([failing]);
    // The poll takes the failed one only once it is older than the grace period.
    relay.start();
    await waitFor(async () => (await remaining()).length === 0, { what: "the poll to publish the failed row" });
    expect(Date.now() - handedAt).toBeGreaterThanOrEqual(1000);
    await relay.stop();
    expect([...made].map((m) => publishes.get(m.event.id))).toEqual([1, 1, 1]);
  });

  it("claims nothing while NATS is down, so the poll holds no transaction (on PGlite, the whole database) on publishes that cannot be acked", async () => {
    // Each clean-up registered as soon as its resource exists; they run in reverse order, so the
    // relay stops before the database it polls goes away, and the server goes last.
    const server = await startOwnNatsServer();
    onTestFinished(() => server.dispose());
    const own = await connectTestNats(server.url);
    onTestFinished(() => own.close());
    const local = await openDatabase("pglite://memory");
    onTestFinished(() => local.close());
    await local.db.execute(sql`create table outbox (seq bigserial primary key, event_id uuid not null unique, subject text not null,
      payload text not null, headers jsonb not null default '{}', created_at timestamptz not null default now())`);
    await ensureStreams(await jetstreamManager(own), names, ["USERS"], { replicas: 1, maxAgeMs: 3600_000 });
    const e = registration("while-down");
    await local.db.transaction((tx) => enqueueEvents(tx, [e]));
    await server.stop();
    let up = false;
    let asked = 0;
    const publishes = new Map<string, number>();
    const relay = createOutboxRelay({ db: local.db, js: countingJs(jetstream(own), publishes), names, log, pollMs: 20, graceMs: 0, connected: () => (asked++, up) });
    onTestFinished(() => relay.stop()); // also when an assertion fails before the stop below
    relay.start();
    await waitFor(() => asked >= 5 || undefined, { what: "five polls while NATS is down" });
    expect(publishes.size).toBe(0);
    expect(await local.db.select({ eventId: outbox.eventId }).from(outbox)).toEqual([{ eventId: e.event.id }]);
    await server.start();
    // Up once the client has reconnected, as the services' connected() reports it: before that a
    // publish would wait for its 5 s ack timeout and leave the row to a later poll.
    await waitFor(() => own.flush().then(() => true), { what: "the client to reconnect" });
    up = true;
    await waitFor(async () => (await local.db.select().from(outbox)).length === 0, { what: "the row published once NATS is back", timeoutMs: 20_000 });
    await relay.stop();
    expect((await (await jetstreamManager(own)).streams.info(names.stream("USERS"))).state.messages).toBe(1);
  });

  it("leaves a handed-over message that waited past the grace period to the poll, so no late copy escapes the dedupe window", async () => {
    const made = ["slow", "stale"].map(registration);
    const queued = await enqueueAndTake(made);
    const sent: string[] = [];
    // One publish at a time, and the first one is slow: the second waits longer than the grace period.
    const slow = aroundPublish(jetstream(nc), async (publish, subject, payload, opts) => {
      sent.push(opts.msgID);
      if (opts.msgID === made[0]!.event.id) await new Promise((r) => setTimeout(r, 300));
      return publish(subject, payload, opts);
    });
    const relay = createOutboxRelay({ db: database.db, js: slow, names, log, graceMs: 100, maxInFlight: 1, pollMs: 60_000 });
    onTestFinished(() => relay.stop()); // also when an assertion fails before the stop below
    const left = async () => ((await database.db.select({ eventId: outbox.eventId }).from(outbox)) as { eventId: string }[]).map((r) => r.eventId);
    relay.handOff(queued);
    // The first row is deleted only after its ack, and the line moved on right after that ack.
    await waitFor(async () => !(await left()).includes(made[0]!.event.id), { what: "the slow message published and its row deleted" });
    expect(sent).toEqual([made[0]!.event.id]);
    expect(await left()).toEqual([made[1]!.event.id]);
    await relay.stop();
    expect(await createOutboxRelay({ db: database.db, js: jetstream(nc), names, log }).relayOnce({ all: true })).toBe(1);
  });

  it("polls a leftover row once the grace period has passed on the database's clock, even if the app's clock runs an hour ahead", async () => {
    const ahead = registration("ahead");
    ahead.event = { ...ahead.event, time: new Date(Date.now() + 3600_000).toISOString() };
    // Committed and never handed over, as when the committing replica dies right after its commit.
    await database.db.transaction((tx) => enqueueEvents(tx, [ahead]));
    const relay = createOutboxRelay({ db: database.db, js: jetstream(nc), names, log, pollMs: 50, graceMs: 200 });
    const left = async () => (await database.db.select({ eventId: outbox.eventId }).from(outbox)).length;
    relay.start();
    try {
      await waitFor(async () => (await left()) === 0, { what: "the poll to publish the row", timeoutMs: 10_000 });
    } finally {
      await relay.stop();
    }
  });

  it("keeps a row whose publish was answered as a duplicate the stream has not stored (sequence 0)", async () => {
    // A clustered stream on a server before 2.11 answers so while the first copy is still being
    // proposed, and that copy can still be lost; a plain responder stands in for it here.
    const responder = nc.subscribe(names.subject("pending.x"), { callback: (_, m) => void m.respond(JSON.stringify({ stream: "USERS", seq: 0, duplicate: true })) });
    onTestFinished(() => responder.unsubscribe());
    const answered = new Set<string>();
    const js = createAckedPublisher(nc);
    onTestFinished(() => js.close());
    const watched = { publish: (...args: Parameters<typeof js.publish>) => js.publish(...args).finally(() => answered.add(args[2].msgID)) };
    const event = { ...registration("pending"), subject: "pending.x" };
    const queued = await enqueueAndTake([event]);
    const relay = createOutboxRelay({ db: database.db, js: watched, names, log, pollMs: 60_000 });
    onTestFinished(() => relay.stop()); // also when an assertion fails before the stop below
    relay.handOff(queued);
    await waitFor(() => answered.has(event.event.id), { what: "the hand-over publish answered" });
    await relay.stop();
    const left = async () => ((await database.db.select({ eventId: outbox.eventId }).from(outbox)) as { eventId: string }[]).map((r) => r.eventId);
    expect(await left()).toEqual([event.event.id]);
    // The poll keeps it too.
    await expect(createOutboxRelay({ db: database.db, js, names, log }).relayOnce({ all: true })).rejects.toThrow(/not stored/);
    expect(await left()).toEqual([event.event.id]);
  });

  it("does not let rows JetStream keeps refusing hold up the rows behind them, and keeps trying them", async () => {
    // No stream takes these subjects: every publish is refused (503), however often it is tried.
    const refused = ["r1", "r2"].map((n) => ({ ...registration(n), subject: `nostream.${n}` }));
    const bad = { ...registration("bad header"), headers: { "bad\nname": "x" } };
    const good = registration("good");
    for (const e of [...refused, bad, good]) await database.db.transaction((tx) => enqueueEvents(tx, [e]));
    const js = createAckedPublisher(nc);
    onTestFinished(() => js.close());
    const relay = createOutboxRelay({ db: database.db, js, names, log, batchSize: 3 });
    onTestFinished(() => relay.stop()); // also when an assertion fails before the stop below
    const left = async () => ((await database.db.select({ eventId: outbox.eventId }).from(outbox).orderBy(outbox.seq)) as { eventId: string }[]).map((r) => r.eventId);
    // The first three fail, two refused by the server and one header the client will not send.
    await expect(relay.relayOnce({ all: true })).rejects.toThrow();
    expect(await relay.relayOnce({ all: true })).toBe(1);
    expect(await left()).toEqual([...refused, bad].map((e) => e.event.id));
    // Then it starts over from the oldest row.
    await expect(relay.relayOnce({ all: true })).rejects.toThrow();
    expect(await left()).toEqual([...refused, bad].map((e) => e.event.id));
  });
});
