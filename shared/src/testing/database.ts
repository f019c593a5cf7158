import postgres from "postgres";
import type { SQL } from "drizzle-orm";
import type { Db } from "../db/database.js";
import { teardown } from "./teardown.js";
import { randomBytes } from "node:crypto";

/** Admin connection used to create and drop per-run databases. */
export const adminDatabaseUrl = (env: Record<string, string | undefined> = process.env) =>
  env.TEST_PG_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;

/** Creates an empty database with a unique name; `drop()` removes it (terminating its backends). */
export async function createTestDatabase(prefix = "of_test", adminUrl = adminDatabaseUrl()): Promise<TestDatabase> {
  const name = uniqueName(prefix).toLowerCase();
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      const a = postgres(adminUrl, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}

/** Runs admin SQL (e.g. ALTER DATABASE … ALLOW_CONNECTIONS false) for fault tests. */
export async function adminSql(statement: string, adminUrl = adminDatabaseUrl()): Promise<void> {
  const a = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await a.unsafe(statement);
  } finally {
    await a.end();
  }
}

/** A fresh database with a service's migrations applied, opened through the production code path. */
export async function createMigratedDatabase(migrationsFolder: string, prefix = "of_app") {
  const { openDatabase } = await import("../db/database.js");
  const testDb = await createTestDatabase(prefix);
  let database: Awaited<ReturnType<typeof openDatabase>> | undefined;
  try {
    database = await openDatabase(testDb.url, { poolSize: 4 });
    await database.migrate(migrationsFolder);
  } catch (err) {
    // No handle reaches the caller, so nobody else would drop it.
    await database?.close().catch(() => {});
    await testDb.drop().catch(() => {});
    throw err;
  }
  return {
    database,
    db: database.db,
    url: testDb.url,
    // The database goes, even when closing the pool failed.
    drop: () => teardown(() => database.close(), () => testDb.drop()),
  };
}

/**
 * Runs `statement` (say, `lock table t in access exclusive mode`) in a transaction that stays
 * open, as a peer stuck mid-transaction would leave it. Resolves once the statement has run;
 * `release()` commits.
 */
export async function holdInTransaction(db: Db, statement: SQL): Promise<{ release(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let held!: () => void;
  const holding = new Promise<void>((r) => (held = r));
  const tx = db.transaction(async (t) => {
    await t.execute(statement);
    held();
    await released;
  });
  await Promise.race([holding, tx]);
  return {
    async release() {
      release();
      await tx;
    },
  };
}
