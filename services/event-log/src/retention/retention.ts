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
 * log position first. Returns how many it deleted.
 */
export async function pruneEvents(db: Db, before: Date, { batch = 5000 }: { batch?: number } = {}): Promise<number> {
  let total = 0;
  for (;;) {
    const [row] = await executeRows<{ n: number }>(db, pruneStatement(before, batch));
    total += row!.n;
    // Until a round finds nothing: rows stored out of time order (an older time at a later
    // position) lie past `hi`, and come within the next round's.
    if (row!.n === 0) return total;
  }
}

/**
 * One pass of the log's retention (a `periodic` job of the service, every minute): deletes the
 * events older than `maxAgeMs` and says how many. Every replica may run it (deleting the same
 * rows twice deletes them once).
 */
export async function pruneOldEvents(db: Db, log: Logger, maxAgeMs: number, now = Date.now()): Promise<number> {
  const before = new Date(now - maxAgeMs);
  const n = await pruneEvents(db, before);
  if (n > 0) log.info({ pruned: n, before: before.toISOString() }, "pruned events older than EVENTLOG_MAX_AGE_MS");
  return n;
}

/** Why a retention shorter than the streams' max_age is worth a warning at start, if it is. */
export function retentionWarning(maxAgeMs: number, streamMaxAgeMs: number): string | undefined {
  if (maxAgeMs > 0 && streamMaxAgeMs > maxAgeMs) return "EVENTLOG_MAX_AGE_MS is shorter than STREAM_MAX_AGE_MS: a replay of the log stores again the pruned events the streams still hold";
  return undefined;
}
