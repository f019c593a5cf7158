import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from "drizzle-orm/pg-core";
import type { ExtractTablesWithRelations, SQL } from "drizzle-orm";
import { StartupError } from "../errors/index.js";
import { pgErrorCode } from "./errors.js";
import { lockDataDirectory } from "./pglite-lock.js";
import { postgresTls } from "./tls.js";
import { postgresHosts } from "./hosts.js";
import { within } from "../lifecycle/within.js";

/**
 * Resolves once the database answers a query, or rejects after `ms`: a command that would
 * otherwise wait for ever on a URL that is not a Postgres (postgres.js reconnects without end
 * while its first query waits) gives up with a reason.
 */
export const pingWithin = (database: Pick<Database, "ping">, ms: number): Promise<void> =>
  within(database.ping(), ms, `the database did not answer within ${ms / 1000} s (is DATABASE_URL a Postgres server?)`);

/** The drizzle handle shared code works with; both drivers (postgres.js, PGlite) satisfy it. */
export type Db = PgDatabase<PgQueryResultHKT, Record<string, unknown>>;
export type Tx = PgTransaction<PgQueryResultHKT, Record<string, unknown>, ExtractTablesWithRelations<Record<string, unknown>>>;
export type Executor = Db | Tx;

export interface Database {
  readonly db: Db;
  readonly kind: "postgres" | "pglite";
  /** Throws when the database cannot answer `select 1`. */
  ping(): Promise<void>;
  /** Applies committed drizzle-kit migrations; safe when several replicas start at once. */
  migrate(migrationsFolder: string): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  poolSize?: number;
  applicationName?: string;
  /**
   * `statement_timeout` for every session (0 or absent: none), and twice that as
   * `idle_in_transaction_session_timeout`. Without them a statement waiting on a lock that is
   * never released (a session idle in a transaction, a peer whose connection is half open after
   * its node died) waits forever, and a consumer keeps telling JetStream it is working on the
   * message. With them it fails as a cancelled query (57014), which is retried like any other
   * transient error, and a transaction of ours left open by a dead connection is ended.
   */
  statementTimeoutMs?: number;
  /** Told before an embedded PGlite database is created in a new directory: that takes seconds, in silence. */
  onCreatingPglite?: (location: string) => void;
}

/**
 * Settings every service session starts with. The planner's default random_page_cost (4)
 * prices an index probe as a disk seek; a service's working set is in memory, where a probe
 * costs about as much as a sequential page read. With the default, a statement that looks up
 * a batch of rows by primary key was planned as a sequential scan while its table held a few
 * hundred rows, and a prepared statement keeps that plan as the table grows (until ANALYZE
 * replans it, which never happens without autovacuum).
 */
export const SESSION_SETTINGS = { random_page_cost: "1.1" } as const;

const timeouts = (ms: number | undefined): Record<string, string> =>
  ms ? { statement_timeout: String(ms), idle_in_transaction_session_timeout: String(2 * ms) } : {};

/**
 * Opens `postgres://…` with postgres.js (a pool that reconnects on its own after an outage)
 * or `pglite://<dir>` (`pglite://memory` for a throwaway one) with embedded PGlite.
 */
export async function openDatabase(url: string, opts: DatabaseOptions = {}): Promise<Database> {
  if (url.startsWith("pglite://")) return openPglite(url.slice("pglite://".length), opts);
  return openPostgres(url, opts);
}

async function openPostgres(url: string, opts: DatabaseOptions): Promise<Database> {
  const { default: postgres } = await import("postgres");
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const tls = postgresTls(url);
  // Both the pool and the migration lock's connection dial these. The hosts go as arrays, which
  // the driver takes as they are (its parseOptions checks Array.isArray), though its Options type
  // declares one host.
  const reach = { ...(tls.ssl ? { ssl: tls.ssl } : {}), ...(postgresHosts(url) as { host?: string; port?: number } | undefined) };
  const client = postgres(tls.url, {
    ...reach,
    max: opts.poolSize ?? 8,
    connect_timeout: 5,
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    connection: { application_name: opts.applicationName ?? "orderflow", ...SESSION_SETTINGS, ...timeouts(opts.statementTimeoutMs) },
  });
  const db = drizzle({ client }) as unknown as Db;
  return {
    db,
    kind: "postgres",
    ping: async () => {
      await client`select 1`;
    },
    migrate: async (migrationsFolder) => {
      const { migrate } = await import("drizzle-orm/postgres-js/migrator");
      // One connection holds an advisory lock so replicas starting together migrate one at a time.
      const lockClient = postgres(tls.url, { ...reach, max: 1, onnotice: () => {}, connect_timeout: 5 });
      try {
        await lockClient`select pg_advisory_lock(7215540011)`;
        await migrate(drizzle({ client: lockClient }), { migrationsFolder });
      } finally {
        await lockClient.end({ timeout: 5 });
      }
    },
    close: () => client.end({ timeout: 5 }),
  };
}

async function openPglite(location: string, opts: DatabaseOptions): Promise<Database> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  const inMemory = location === "memory";
  if (!inMemory) {
    try {
      mkdirSync(location, { recursive: true });
    } catch (err) {
      // A file where a directory should be, or no right to create it: the operator's to fix.
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === "ENOTDIR" || code === "EEXIST" ? "part of that path is a file, not a directory" : code === "EACCES" || code === "EPERM" || code === "EROFS" ? "this process may not create it" : (err as Error).message;
      throw new StartupError(`cannot create the PGlite data directory ${location}: ${why}; point DATABASE_URL at pglite://<a directory this process can write>`, { cause: err });
    }
  }
  const release = inMemory ? () => {} : lockDataDirectory(location);
  if (!inMemory && !existsSync(join(location, "PG_VERSION"))) opts.onCreatingPglite?.(location);
  let client;
  try {
    client = inMemory ? new PGlite() : new PGlite(location);
    await client.waitReady;
  } catch (err) {
    release();
    throw err;
  }
  const db = drizzle({ client }) as unknown as Db;
  return {
    db,
    kind: "pglite",
    ping: async () => {
      await db.execute(sql`select 1`);
    },
    migrate: async (migrationsFolder) => {
      const { migrate } = await import("drizzle-orm/pglite/migrator");
      await migrate(drizzle({ client }), { migrationsFolder });
    },
    close: () => client.close().finally(release),
  };
}

/** The rows of a raw query: postgres.js returns them as the result, PGlite under `.rows`. */
export async function executeRows<Row>(db: Db, query: SQL): Promise<Row[]> {
  const result = (await db.execute(query)) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Row[];
}

/**
 * The database's recorded migration history is not this folder's: a journal entry no newer than
 * the last one it recorded was never recorded. drizzle's migrator only applies entries newer than
 * that last one, so it would never apply these; the database belongs to another service (or was
 * migrated from another folder). `unrecorded` names them, oldest first.
 */
export class ForeignMigrationsError extends Error {
  override name = "ForeignMigrationsError";
  constructor(readonly unrecorded: string[]) {
    super(`its recorded migrations lack ${unrecorded.length} of this journal's older ones (${unrecorded.slice(0, 3).join(", ")}${unrecorded.length > 3 ? ", …" : ""})`);
  }

  /** What the operator is told, by a service refusing to start and by a replay refusing to run. */
  explain(redactedUrl: string, service: string): string {
    return `the database at ${redactedUrl} holds another schema's migrations, not ${service}'s (${this.message}); check DATABASE_URL`;
  }
}

/**
 * How many of a folder's drizzle-kit migrations the database has not applied yet. drizzle's
 * migrator applies every journal entry newer than the last one it recorded, so count those.
 * Readiness uses it when migrations are left to a Job (MIGRATE_ON_START=false).
 * Throws ForeignMigrationsError when the recorded history does not match the journal (another
 * service's database: its newest migration is newer than ours, so comparing only the newest
 * would call it fully migrated). Recorded entries newer than the whole journal are a rollback to
 * an older build and are allowed.
 */
export async function pendingMigrations(db: Db, migrationsFolder: string): Promise<number> {
  const journal = JSON.parse(readFileSync(join(migrationsFolder, "meta", "_journal.json"), "utf8")) as { entries: { when: number; tag: string }[] };
  let recorded: number[] = [];
  try {
    // drizzle records each migration's journal `when` as its created_at.
    const rows = await executeRows<{ at: string }>(db, sql`select created_at::text as at from drizzle.__drizzle_migrations`);
    recorded = rows.map((r) => Number(r.at));
  } catch (err) {
    // No migrations table (or schema) yet: nothing has been applied.
    if (!["42P01", "3F000"].includes(pgErrorCode(err) ?? "")) throw err;
  }
  const last = Math.max(0, ...recorded);
  const applied = new Set(recorded);
  const unrecorded = journal.entries.filter((e) => e.when <= last && !applied.has(e.when));
  if (unrecorded.length > 0) throw new ForeignMigrationsError(unrecorded.map((e) => e.tag));
  return journal.entries.filter((e) => e.when > last).length;
}
