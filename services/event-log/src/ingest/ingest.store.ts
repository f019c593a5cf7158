import type { Db, Executor } from "@orderflow/shared";
import { events, type NewEventRow } from "../db/schema.js";

/**
 * Inserts a batch in one statement; a message already stored (redelivery, replay) is skipped.
 * Returns how many rows were new.
 */
export async function insertEvents(db: Executor, rows: NewEventRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  const inserted = await db.insert(events).values(rows).onConflictDoNothing().returning({ seq: events.seq });
  return inserted.length;
}

export interface EventWriter {
  /** Stores a batch; batches from every stream's consumer are written one at a time. */
  write(rows: NewEventRow[]): Promise<number>;
}

/**
 * Serializes writes so that, within one process, log sequence order is commit order: the live
 * tail reads `seq > last` and would skip a row whose transaction committed late.
 */
export function createEventWriter({ db, onStored }: { db: Db; onStored?: () => void }): EventWriter {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    write(rows) {
      const run = tail.then(async () => {
        const n = await insertEvents(db, rows);
        if (n > 0) onStored?.();
        return n;
      });
      tail = run.catch(() => {});
      return run;
    },
  };
}
