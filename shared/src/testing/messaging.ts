import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { sql } from "drizzle-orm";
import { openDatabase, type Database } from "../db/database.js";
import type { StreamName } from "../events/catalog.js";
import type { Names } from "../nats/names.js";
import { ensureStreams } from "../nats/streams.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { connectTestNats, deleteNamespace } from "./nats.js";
import { teardown } from "./teardown.js";

// The shared tables as the services' migrations create them, for tests of the shared pieces,
// which own no service schema.
const ddl = {
  outbox: sql`create table outbox (seq bigserial primary key, event_id uuid not null unique, subject text not null,
    payload text not null, headers jsonb not null default '{}', created_at timestamptz not null default now())`,
  inbox: sql`create table inbox (consumer text not null, event_id text not null, subject text not null,
    stream_seq bigint, processed_by text, processed_at timestamptz not null default now(), primary key (consumer, event_id))`,
};

export interface MessagingFixture {
  nc: NatsConnection;
  testDb: TestDatabase;
  database: Database;
  /** Closes the pool, drops the database, deletes the namespace's streams, closes NATS: each step whatever the others did. */
  dispose(): Promise<void>;
}

/**
 * What a test of the outbox relay or the consumer runner works in: a NATS connection, the
 * namespace's `streams`, and a disposable database holding only the shared `tables`.
 */
export async function createMessagingFixture(o: { dbPrefix: string; names: Names; streams: StreamName[]; tables: (keyof typeof ddl)[] }): Promise<MessagingFixture> {
  let nc: NatsConnection | undefined;
  let testDb: TestDatabase | undefined;
  let database: Database | undefined;
  const dispose = () =>
    teardown(
      () => database?.close(),
      () => testDb?.drop(),
      () => nc && deleteNamespace(nc, o.names.namespace),
      () => nc?.close(),
    );
  try {
    nc = await connectTestNats();
    testDb = await createTestDatabase(o.dbPrefix);
    database = await openDatabase(testDb.url);
    for (const table of o.tables) await database.db.execute(ddl[table]);
    await ensureStreams(await jetstreamManager(nc), o.names, o.streams, { replicas: 1, maxAgeMs: 3600_000 });
  } catch (err) {
    await dispose().catch(() => {});
    throw err;
  }
  return { nc, testDb, database, dispose };
}
