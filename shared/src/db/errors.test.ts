import { describe, expect, it, onTestFinished } from "vitest";
import { sql } from "drizzle-orm";
import { Writable } from "node:stream";
import { pino } from "pino";
import { createLogger } from "../logger/index.js";
import { waitFor } from "../testing/wait.js";
import { openDatabase } from "./database.js";
import { isDatabaseUnreachable, isPermanentDbError, isTransientDbError, isUniqueViolation, reportableError } from "./errors.js";
import { adminSql, createTestDatabase, holdInTransaction } from "../testing/database.js";

describe("database errors", () => {
  // On both drivers: postgres.js in production, PGlite for `npm start` without a database.
  const onBoth = async (run: (database: Awaited<ReturnType<typeof openDatabase>>) => Promise<void>) => {
    const embedded = await openDatabase("pglite://memory");
    try {
      await run(embedded);
    } finally {
      await embedded.close();
    }
    const testDb = await createTestDatabase("of_errors");
    onTestFinished(() => testDb.drop()); // runs after the close below, whatever failed
    const database = await openDatabase(testDb.url, { poolSize: 1 });
    try {
      await run(database);
    } finally {
      await database.close();
    }
  };

  it("counts a database that refuses writes (read-only, as after a failover to a standby) as not taking work: a 503, not a 500", async () => {
    await onBoth(async ({ db }) => {
      const err = await db.transaction(async (tx) => {
        await tx.execute(sql`set transaction read only`);
        await tx.execute(sql`create temporary table t (x int)`);
      }).catch((e: unknown) => e);
      expect(isDatabaseUnreachable(err)).toBe(true);
      expect(isTransientDbError(err)).toBe(true);
      expect(isPermanentDbError(err)).toBe(false);
    });
  });

  it("reports the driver's reason and SQLSTATE, never the query parameters, in logs too", async () => {
    await onBoth(async (database) => {
      await database.db.execute(sql`create table t (email text primary key)`);
      await database.db.execute(sql`insert into t values (${"secret@example.com"})`);
      const err = await database.db.execute(sql`insert into t values (${"secret@example.com"})`).catch((e: unknown) => e);
      expect(isUniqueViolation(err)).toBe(true);
      expect(isTransientDbError(err)).toBe(false);
      const reported = reportableError(err);
      expect(reported.message).toMatch(/^23505: duplicate key value/);
      expect(reported.message).not.toContain("secret@example.com");
      expect(reported.name).not.toBe("Error");
      // What pino writes for `{ err }`: its serializer follows `cause` chains into messages and stacks.
      expect(JSON.stringify(pino.stdSerializers.err(reported))).not.toContain("secret@example.com");
      expect(JSON.stringify(pino.stdSerializers.err(reported))).not.toMatch(/insert into/i);
      // And the services' logger does that for an error logged as it is.
      const lines: string[] = [];
      const log = createLogger({ service: "t", destination: new Writable({ write: (chunk, _, done) => (lines.push(String(chunk)), done()) }) });
      log.error({ err }, "failed");
      await waitFor(() => lines.length === 1, { what: "the log line" });
      expect(lines[0]).toMatch(/23505: duplicate key value/);
      expect(lines[0]).not.toContain("secret@example.com");
    });
  });

  it("tells data the database refuses (permanent) from unique and foreign-key violations a retry can outlive", async () => {
    await onBoth(async (database) => {
      await database.db.execute(sql`create table p (id int primary key)`);
      await database.db.execute(sql`create table c (id int primary key, p int references p, n int not null check (n > 0))`);
      const failure = (q: ReturnType<typeof sql>) => database.db.execute(q).catch((e: unknown) => e);
      const refused = [
        await failure(sql`select ${"0000-01-01T00:00:00Z"}::timestamptz`), // 22008
        await failure(sql`select ${"x"}::int`), // 22P02
        await failure(sql`insert into c values (1, null, null)`), // 23502
        await failure(sql`insert into c values (1, null, 0)`), // 23514
      ];
      for (const err of refused) expect(isPermanentDbError(err), String(err)).toBe(true);
      await database.db.execute(sql`insert into c values (1, null, 1)`);
      for (const err of [await failure(sql`insert into c values (1, null, 1)`), await failure(sql`insert into c values (2, 7, 1)`)]) {
        expect(isPermanentDbError(err), String(err)).toBe(false);
      }
      expect(isPermanentDbError(new Error("not a database error"))).toBe(false);
    });
  });

  it("ends a statement that waits on a lock past statementTimeoutMs with a transient error", async () => {
    const testDb = await createTestDatabase("of_timeout");
    onTestFinished(() => testDb.drop());
    const holder = await openDatabase(testDb.url, { poolSize: 1 });
    const database = await openDatabase(testDb.url, { poolSize: 1, statementTimeoutMs: 300 });
    try {
      await holder.db.execute(sql`create table t (id int primary key)`);
      // A session that holds the table and does not let go: an idle transaction, as a peer whose
      // connection is half open would leave it.
      const lock = await holdInTransaction(holder.db, sql`lock table t in access exclusive mode`);
      const err = await database.db.execute(sql`select count(*) from t`).catch((e: unknown) => e);
      await lock.release();
      expect(reportableError(err).message).toMatch(/^57014: canceling statement due to statement timeout/);
      expect(isTransientDbError(err)).toBe(true);
      // Transient, but about this statement: it counts against an event's retry budget.
      expect(isDatabaseUnreachable(err)).toBe(false);
      // A database that does not take connections is unreachable, whatever the statement.
      await adminSql(`alter database "${testDb.name}" allow_connections false`);
      const refused = await openDatabase(testDb.url, { poolSize: 1 });
      const down = await refused.db.execute(sql`select 1`).catch((e: unknown) => e);
      await refused.close();
      await adminSql(`alter database "${testDb.name}" allow_connections true`);
      expect(isDatabaseUnreachable(down)).toBe(true);
      // Once the lock is gone, the same session reads the table.
      expect(await database.db.execute(sql`select count(*)::int as n from t`)).toEqual([{ n: 0 }]);
    } finally {
      await database.close();
      await holder.close();
    }
  });

  it("logs what a network error says failed (code, address, port), and the reasons of an empty AggregateError", async () => {
    const lines: string[] = [];
    const log = createLogger({ service: "t", destination: new Writable({ write: (chunk, _, done) => (lines.push(String(chunk)), done()) }) });
    const refused = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}:5432`), { code: "ECONNREFUSED", address, port: 5432 });
    // What Node's dual-stack connect throws: no message of its own.
    const dual = Object.assign(new AggregateError([refused("::1"), refused("127.0.0.1")], ""), { code: "ECONNREFUSED" });
    log.error({ err: dual }, "failed");
    await waitFor(() => lines.length === 1, { what: "the log line" });
    const { err } = JSON.parse(lines[0]!) as { err: Record<string, unknown> };
    expect(err).toMatchObject({ type: "AggregateError", code: "ECONNREFUSED", message: "connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432" });
  });

  it("keeps the name and message of errors that are not query failures, without their cause", () => {
    const plain = new TypeError("boom", { cause: new Error("Failed query: insert … params: secret@example.com") });
    const reported = reportableError(plain);
    expect(reported).toMatchObject({ name: "TypeError", message: "boom" });
    expect(reported.cause).toBeUndefined();
    expect(reported.stack).toMatch(/^TypeError: boom\n\s+at /);
    expect(reportableError("text").message).toBe("text");
  });
});
