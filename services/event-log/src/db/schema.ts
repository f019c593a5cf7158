import { sql } from "drizzle-orm";
import { bigint, bigserial, boolean, index, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";

/**
 * Every message of every stream, as published: valid events and invalid ones (flagged, with
 * the reason). One row per stored JetStream message, so redeliveries and replays change nothing.
 */
export const events = pgTable(
  "events",
  {
    /** Position in this log: the SSE event id and the tie-breaker of the newest-first order. */
    seq: bigserial("seq", { mode: "number" }).primaryKey(),
    /** CloudEvents `id`; null when the body had none. Not unique: a dead letter repeats it. */
    eventId: text("event_id"),
    /** Logical stream name (USERS, ORDERS, SYSTEM, DLQ). */
    stream: text("stream").notNull(),
    streamSeq: bigint("stream_seq", { mode: "number" }).notNull(),
    /** When JetStream stored it; with stream and sequence it names the message even if a stream is recreated. */
    streamTime: timestamp("stream_time", { withTimezone: true, precision: 6 }).notNull(),
    /** NATS subject without the namespace prefix. */
    subject: text("subject").notNull(),
    type: text("type"),
    source: text("source"),
    /** CloudEvents `subject`: the entity the event is about (a user id, service/instance). */
    entity: text("entity"),
    /** CloudEvents `time`, or `stream_time` when the body had no valid time. */
    time: timestamp("time", { withTimezone: true, precision: 3 }).notNull(),
    data: jsonb("data"),
    headers: jsonb("headers").$type<Record<string, string>>().notNull().default({}),
    traceparent: text("traceparent"),
    correlationId: text("correlation_id"),
    valid: boolean("valid").notNull(),
    error: text("error"),
    /** The body as text when it was not JSON, so the log still shows what was sent. */
    raw: text("raw"),
    storedAt: timestamp("stored_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("events_stream_position_key").on(t.stream, t.streamSeq, t.streamTime),
    index("events_time_idx").on(t.time.desc(), t.seq.desc()),
    index("events_entity_time_idx").on(t.entity, t.time.desc(), t.seq.desc()),
    index("events_type_time_idx").on(t.type, t.time.desc(), t.seq.desc()),
    index("events_source_time_idx").on(t.source, t.time.desc(), t.seq.desc()),
    index("events_subject_time_idx").on(t.subject, t.time.desc(), t.seq.desc()),
    index("events_event_id_idx").on(t.eventId),
    index("events_invalid_idx").on(t.seq).where(sql`not ${t.valid}`),
  ],
);

export type EventRow = typeof events.$inferSelect;
export type NewEventRow = typeof events.$inferInsert;
