import type { CloudEvent } from "../events/envelope.js";
import type { OutboxMessage } from "./handoff.js";
import type { Executor } from "../db/database.js";
import { jsonRows, prepared } from "../db/statement.js";
import { queueAfterCommit } from "./handoff.js";

/** The outbox row for an event: what `enqueueEvents` writes, and what a service's own batch
 * statement selects into `insert into outbox (${OUTBOX_COLUMNS})`. */
export const outboxRow = (subject: string, event: CloudEvent, headers: Record<string, string> = {}) => ({
  event_id: event.id,
  subject,
  payload: JSON.stringify(event),
  headers,
});

/** What the relay publishes for a row made by `outboxRow`. */
export const outboxMessage = (row: ReturnType<typeof outboxRow>): OutboxMessage => ({ eventId: row.event_id, subject: row.subject, payload: row.payload, headers: row.headers });

// created_at is left to the column's default, now(): the database's clock, the one the relay's
// poll compares it with. The event's time is the app's clock, and an app clock ahead of the
// database's would hide a leftover row from the poll for as long as the skew.
export const OUTBOX_COLUMNS = "event_id, subject, payload, headers";
/** `as r(…)` column list for rows made by `outboxRow` (plus `n`, see jsonRows). */
export const OUTBOX_RECORD = "n int, event_id uuid, subject text, payload text, headers jsonb";

const INSERT_OUTBOX = `insert into outbox (${OUTBOX_COLUMNS})
select event_id, subject, payload, headers
from json_to_recordset($1::text::json) as r(${OUTBOX_RECORD})
order by n`;

/**
 * Writes events to the outbox inside the caller's transaction. They are published by the
 * relay only once that transaction commits, and never if it rolls back: handed over by the
 * committer (see queueAfterCommit), or else found by the relay's poll.
 */
export async function enqueueEvents(
  tx: Executor,
  events: readonly { subject: string; event: CloudEvent; headers?: Record<string, string> }[],
): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((e) => outboxRow(e.subject, e.event, e.headers));
  await prepared(tx, INSERT_OUTBOX, [jsonRows(rows)]);
  queueAfterCommit(tx, rows.map(outboxMessage));
}
