import { bigint, bigserial, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * Events waiting to be published. A row is written in the same transaction as the state
 * change it describes, so an event exists if and only if that change committed; the relay
 * deletes it only after JetStream acknowledged it (in batches for rows handed over at commit, in
 * the claiming transaction for rows the poll found), so the table holds only the backlog. Every service that publishes includes this table in its own schema.
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
  },
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
    /** The instance (pod) that applied it: shows how work spreads across replicas. */
    processedBy: text("processed_by"),
    processedAt: timestamp("processed_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.consumer, t.eventId] })],
);

export type OutboxRow = typeof outbox.$inferSelect;

/**
 * Responses to writes made with an Idempotency-Key. The row is inserted in the same
 * transaction as the write it guards, so a concurrent request with the same key waits on it
 * and then replays the stored response instead of writing again.
 */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    /** Route scope plus the client's key, e.g. `POST /users:abc-123`. */
    key: text("key").primaryKey(),
    requestHash: text("request_hash").notNull(),
    status: integer("status").notNull(),
    responseBody: text("response_body").notNull(),
    responseHeaders: jsonb("response_headers").$type<Record<string, string>>().notNull().default({}),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("idempotency_keys_created_idx").on(t.createdAt)],
);
