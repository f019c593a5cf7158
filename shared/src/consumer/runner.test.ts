import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { sql } from "drizzle-orm";
import { openDatabase, type Database } from "../db/database.js";
import { createEvent } from "../events/create.js";
import { uuidv7 } from "../ids/index.js";
import { createLogger } from "../logger/index.js";
import { createNames } from "../nats/names.js";
import { ensureStreams } from "../nats/streams.js";
import { connectTestNats, deleteNamespace, uniqueNamespace, waitFor } from "../testing/index.js";
import { DlqHeaders } from "./dead-letter.js";
import { createConsumer, type ConsumerOptions } from "./runner.js";
import { enqueueEvents } from "../outbox/enqueue.js";
import type { OutboxMessage } from "../outbox/handoff.js";

const namespace = uniqueNamespace();
const names = createNames(namespace);
const log = createLogger({ service: "runner-test", level: "silent" });
let nc: NatsConnection;
let database: Database;

beforeAll(async () => {
  nc = await connectTestNats();
  database = await openDatabase("pglite://memory");
  await database.db.execute(sql`create table inbox (consumer text not null, event_id text not null, subject text not null,
    stream_seq bigint, processed_by text, processed_at timestamptz not null default now(), primary key (consumer, event_id))`);
  await database.db.execute(sql`create table outbox (seq bigserial primary key, event_id uuid not null unique, subject text not null,
    payload text not null, headers jsonb not null default '{}', created_at timestamptz not null default now())`);
  await ensureStreams(await jetstreamManager(nc), names, ["USERS", "DLQ"], { replicas: 1, maxAgeMs: 3600_000 });
});
afterAll(async () => {
  await database?.close();
  await deleteNamespace(nc, namespace);
  await nc?.close();
});

/** A runner on this file's USERS stream for users.registered. */
const runnerFor = async (durable: string, o: Pick<ConsumerOptions, "handlers" | "retry"> & Partial<ConsumerOptions>) =>
  createConsumer({ js: jetstream(nc), jsm: await jetstreamManager(nc), db: database.db, names, log, stream: "USERS", filterSubject: "users.registered", durable, ...o });

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
      expect(letter.header.get(DlqHeaders.ErrorClass)).toBe("RedeliveryLimitError");
      expect(letter.header.get(DlqHeaders.Deliveries)).toBe("4");
      expect(handled).toEqual([]);
    } finally {
      await again.stop();
    }
  });

  it("hands the relay what its handlers wrote to the outbox, once their transaction has committed", async () => {
    const handed: OutboxMessage[] = [];
    const consumer = await runnerFor("handoff-test", {
      retry: { delaysMs: [10], maxDeliver: 2 },
      handlers: {
        "users.registered": async (tx, e) => {
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
        await jetstream(nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
      }
      await waitFor(() => handed.length >= 3, { what: "three hand-overs" });
      const rows = (await database.db.execute(sql`select event_id, payload from outbox where subject = 'orders.created' order by seq`)) as unknown as { rows: { event_id: string; payload: string }[] };
      expect(handed.map((m) => ({ event_id: m.eventId, payload: m.payload }))).toEqual(rows.rows);
      expect(handed.every((m) => m.subject === "orders.created")).toBe(true);
    } finally {
      await consumer.stop();
    }
  });
});
