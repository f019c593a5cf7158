import type { Db, Executor } from "@orderflow/shared";
import { sql } from "drizzle-orm";
import { PgTransaction } from "drizzle-orm/pg-core";
import { events, type NewEventRow } from "../db/schema.js";

/** Held by every inserting transaction until it commits (see insertEvents). */
const LOG_ORDER_LOCK = 7215540012;

/**
 * Inserts a batch in one statement; a message already stored (redelivery, replay) is skipped.
 * Returns the stream sequence numbers of the rows that were new. Log sequence order must be commit order, or the live tail
 * (`seq > last`) skips a row that committed after a later one: a transaction-scoped advisory
 * lock makes inserts from every process (replicas, a replay beside the service) take turns.
 */
export async function insertEvents(ex: Executor, rows: NewEventRow[]): Promise<number[]> {
  if (rows.length === 0) return [];
  const run = async (tx: Executor) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${LOG_ORDER_LOCK})`);
    return (await tx.insert(events).values(rows).onConflictDoNothing().returning({ streamSeq: events.streamSeq })).map((r) => r.streamSeq);
  };
  return ex instanceof PgTransaction ? run(ex) : (ex as Db).transaction(run);
}

export interface EventWriter {
  /**
   * Stores a batch; batches from every stream's consumer are written one at a time. Returns the
   * stream sequence numbers of the rows that were new.
   */
  write(rows: NewEventRow[]): Promise<number[]>;
}

/**
 * Serializes this process's writes (one transaction at a time rather than queueing on the lock),
 * so that log sequence order is commit order: the live tail reads `seq > last` and would skip a
 * row whose transaction committed late.
 */
export function createEventWriter({ db, onStored }: { db: Db; onStored?: () => void }): EventWriter {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    write(rows) {
      const run = tail.then(async () => {
        const stored = await insertEvents(db, rows);
        if (stored.length > 0) onStored?.();
        return stored;
      });
      tail = run.catch(() => {});
      return run;
    },
  };
}
