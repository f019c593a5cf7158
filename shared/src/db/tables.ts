import { sql } from "drizzle-orm";
import { bigint, bigserial, index, jsonb, pgTable, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * Events waiting to be published. A row is written in the same transaction as the state
 * change it describes, so an event exists if and only if that change committed.
 * Every service that publishes includes this table in its own schema.
 */
export const outbox = pgTable(
  "outbox",
  {
    /** Publish order within one relay; also a cheap cursor. */
    seq: bigserial("seq", { mode: "number" }).primaryKey(),
    /** The CloudEvent id, sent as Nats-Msg-Id so a republish after a crash is deduplicated. */
    eventId: uuid("event_id").notNull().unique(),
    /** Logical subject (without namespace), e.g. users.registered. */
    subject: text("subject").notNull(),
    /** The exact bytes to publish: the serialized CloudEvent. */
    payload: text("payload").notNull(),
    headers: jsonb("headers").$type<Record<string, string>>().notNull().default({}),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    publishedAt: timestamp("published_at", { withTimezone: true }),
  },
  (t) => [index("outbox_unpublished_idx").on(t.seq).where(sql`${t.publishedAt} is null`)],
);

/**
 * Events a consumer has applied, keyed by consumer and CloudEvent id. Inserted in the same
 * transaction as the handler's writes: a redelivered event finds its row and changes nothing.
 */
export const inbox = pgTable(
  "inbox",
  {
    consumer: text("consumer").notNull(),
    eventId: text("event_id").notNull(),
    subject: text("subject").notNull(),
    streamSeq: bigint("stream_seq", { mode: "number" }),
    processedAt: timestamp("processed_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.consumer, t.eventId] })],
);

export type OutboxRow = typeof outbox.$inferSelect;
