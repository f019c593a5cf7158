import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { asc } from "drizzle-orm";
import { createEvent, createLogger, createNames, ensureStreams, replay, uuidv7, type Names } from "@orderflow/shared";
import { connectTestNats, createMigratedDatabase, deleteNamespace, uniqueNamespace, waitFor } from "@orderflow/shared/testing";
import { events } from "../db/schema.js";
import { eventLogReplayTarget } from "../replay.js";
import { createIngestConsumer, type IngestConsumer } from "./ingest.consumer.js";
import { createEventWriter } from "./ingest.store.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
const log = createLogger({ service: "test", level: "silent" });
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
afterAll(async () => {
  await Promise.all(consumers.map((c) => c.stop()));
  if (nc) {
    await deleteNamespace(nc, names.namespace).catch(() => {});
    await nc.close();
  }
  await env?.drop();
});

const snapshot = async () =>
  (await env.db.select().from(events).orderBy(asc(events.stream), asc(events.streamSeq))).map((r) => ({
    stream: r.stream, streamSeq: r.streamSeq, eventId: r.eventId, type: r.type, entity: r.entity, valid: r.valid, error: r.error, data: r.data, time: r.time.toISOString(),
  }));

describe("ingest and replay", () => {
  it("stores every stream's events once, invalid ones flagged, and a full replay rebuilds the log exactly", async () => {
    const writer = createEventWriter({ db: env.db });
    for (const stream of ["USERS", "ORDERS", "SYSTEM", "DLQ"] as const) {
      const c = createIngestConsumer({ js, jsm, names, log, writer, stream, batchSize: 10, lingerMs: 10 });
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

    const expected = 25 + 1 + 1 + 1 + 1;
    await waitFor(async () => (await snapshot()).length === expected, { what: `${expected} stored events` });
    const stored = await snapshot();
    expect(stored.filter((r) => !r.valid).map((r) => [r.stream, r.eventId])).toEqual([
      ["DLQ", bad.id],
      ["ORDERS", null],
      ["USERS", bad.id],
    ]);
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
    expect(dry).toMatchObject({ read: 7, applied: 0, skipped: 7, dryRun: true });
    expect(await snapshot()).toEqual(stored);
  });
});
