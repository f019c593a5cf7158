import { executeRows, type Db } from "@orderflow/shared";
import { sql, type SQL } from "drizzle-orm";
import type { Logger } from "pino";

/**
 * One round of pruning: up to `batch` of the events before `before`, by log position.
 * The newest doomed row first, straight off events_time_idx (in its order, nulls last included,
 * or the planner sorts the table); then the oldest rows up to it, a range of the primary key
 * (found by time alone, the planner scanned the table), deleted by key (a join planned a scan
 * too). Nothing doomed: `hi` is empty and so is the range. retention.test.ts pins the plan.
 */
export function pruneStatement(before: Date, batch: number): SQL {
  const cutoff = before.toISOString();
  return sql`with hi as (select seq from events where time < ${cutoff}::timestamptz order by time desc nulls last, seq desc nulls last limit 1),
    gone as (
      delete from events where seq = any(array(
        select seq from events where seq <= (select seq from hi) and time < ${cutoff}::timestamptz order by seq limit ${batch}))
      returning 1)
    select count(*)::int as n from gone`;
}

/**
 * Deletes the events whose time is before `before`, `batch` rows per statement (each its own
 * short transaction, so ingest and the live tail are never held behind one long delete), oldest
 * log position first. Returns how many it deleted; `shouldStop` ends it between batches.
 */
export async function pruneEvents(db: Db, before: Date, { batch = 5000, shouldStop = () => false }: { batch?: number; shouldStop?: () => boolean } = {}): Promise<number> {
  let total = 0;
  for (;;) {
    const [row] = await executeRows<{ n: number }>(db, pruneStatement(before, batch));
    total += row!.n;
    // Until a round finds nothing: rows stored out of time order (an older time at a later
    // position) lie past `hi`, and come within the next round's.
    if (row!.n === 0 || shouldStop()) return total;
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
export function createRetention({
  db,
  log,
  maxAgeMs,
  streamMaxAgeMs = 0,
  everyMs = 60_000,
  now = () => Date.now(),
}: {
  db: Db;
  log: Logger;
  maxAgeMs: number;
  /** The streams' max_age: a log kept shorter gets back, from a replay, what it pruned. */
  streamMaxAgeMs?: number;
  everyMs?: number;
  now?: () => number;
}): Retention {
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
      if (streamMaxAgeMs > maxAgeMs) {
        log.warn({ EVENTLOG_MAX_AGE_MS: maxAgeMs, STREAM_MAX_AGE_MS: streamMaxAgeMs }, "EVENTLOG_MAX_AGE_MS is shorter than STREAM_MAX_AGE_MS: a replay of the log stores again the pruned events the streams still hold");
      }
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
