import { executeRows, type Db } from "@orderflow/shared";
import { sql } from "drizzle-orm";
import type { Logger } from "pino";

/**
 * Deletes the events whose time is before `before`, `batch` rows per statement (each its own
 * short transaction, so ingest and the live tail are never held behind one long delete). Walks
 * events_time_idx from the oldest end. Returns how many it deleted; `shouldStop` ends it between
 * batches.
 */
export async function pruneEvents(db: Db, before: Date, { batch = 5000, shouldStop = () => false }: { batch?: number; shouldStop?: () => boolean } = {}): Promise<number> {
  let total = 0;
  for (;;) {
    const [row] = await executeRows<{ n: number }>(
      db,
      sql`with doomed as (select seq from events where time < ${before.toISOString()}::timestamptz order by time limit ${batch}),
        gone as (delete from events e using doomed d where e.seq = d.seq returning 1)
        select count(*)::int as n from gone`,
    );
    total += row!.n;
    if (row!.n < batch || shouldStop()) return total;
  }
}

export interface Retention {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Keeps the log to `maxAgeMs` by event time: prunes at start and then every `everyMs`. Every
 * replica may run it (deleting the same rows twice deletes them once). A failed run is logged
 * and tried again at the next interval.
 */
export function createRetention({ db, log, maxAgeMs, everyMs = 60_000, now = () => Date.now() }: { db: Db; log: Logger; maxAgeMs: number; everyMs?: number; now?: () => number }): Retention {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopping = false;
  const run = async () => {
    const before = new Date(now() - maxAgeMs);
    try {
      const n = await pruneEvents(db, before, { shouldStop: () => stopping });
      if (n > 0) log.info({ pruned: n, before: before.toISOString() }, "pruned events older than EVENTLOG_MAX_AGE_MS");
    } catch (err) {
      log.warn({ err: (err as Error).message }, "could not prune old events; trying again later");
    }
  };
  const schedule = () => {
    if (stopping) return;
    timer = setTimeout(() => {
      running = run().then(schedule);
    }, everyMs);
    timer.unref();
  };
  return {
    name: "retention",
    async start() {
      // Not awaited: a first prune of a large backlog must not hold up readiness.
      running = run().then(schedule);
    },
    async stop() {
      stopping = true;
      clearTimeout(timer);
      await running;
    },
  };
}
