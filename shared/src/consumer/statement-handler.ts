import type { Tx } from "../db/database.js";
import { jsonRows, prepared } from "../db/statement.js";
import type { CloudEvent } from "../events/envelope.js";
import type { EventData, EventName } from "../events/catalog.js";
import { queueAfterCommit, type OutboxMessage } from "../outbox/handoff.js";

/**
 * A consumer handler written as SQL. The runner applies a whole batch of first deliveries with
 * one autocommitted statement that records the inbox rows and applies the events together: one
 * round trip instead of BEGIN, inbox insert, handler statements and COMMIT. The same definition
 * serves as an ordinary per-event handler (redeliveries, replays) inside a transaction.
 */
export interface StatementHandler<E extends CloudEvent = CloudEvent> {
  /** Column list of the rows `row` makes, as in `json_to_recordset(…) as r(<columns>)`. */
  columns: string;
  /** The event's row; keys `n`, `event_id`, `subject` and `stream_seq` are the runner's. */
  row(event: E): Record<string, unknown>;
  /**
   * Data-modifying CTEs (`, name as (…)`, …) that apply the rows in `applied`. A CTE named
   * `queued` returning outbox rows (event_id, subject, payload, headers) hands them to the relay.
   */
  apply: string;
  /** Whether `apply` defines `queued`. */
  queues?: boolean;
  /**
   * A condition on `r` that an event must meet to be applied at all. An event that fails it is
   * not recorded in the batch; the runner retries it alone, where `reject` gives its error.
   */
  accept?: string;
  reject?(event: E): Error;
}

export const STATEMENT_HANDLER: unique symbol = Symbol("orderflow.statement-handler");

/** A per-event handler that also carries its statement form for the runner's batches. */
export type StatementBackedHandler<N extends EventName> = ((tx: Tx, event: CloudEvent<EventData<N>>) => Promise<void>) & {
  readonly [STATEMENT_HANDLER]: StatementHandler<CloudEvent<EventData<N>>>;
};

interface QueuedRow {
  event_id: string;
  subject: string;
  payload: string;
  headers: Record<string, string>;
}

const queuedJson = (def: StatementHandler) => (def.queues ? "(select coalesce(json_agg(q), '[]'::json) from queued q)" : "'[]'::json");
const toMessages = (rows: QueuedRow[]): OutboxMessage[] => rows.map((q) => ({ eventId: q.event_id, subject: q.subject, payload: q.payload, headers: q.headers }));

/** Makes a per-event handler from a statement definition (and keeps the definition on it). */
export function statementHandler<N extends EventName>(def: StatementHandler<CloudEvent<EventData<N>>>): StatementBackedHandler<N> {
  const text = `with applied as (
  select * from json_to_recordset($1::text::json) as r(n int, event_id text, ${def.columns})
  where ${def.accept ?? "true"}
)${def.apply}
select (select count(*)::int from applied) as accepted, ${queuedJson(def as StatementHandler)} as queued`;
  const handler = async (tx: Tx, event: CloudEvent<EventData<N>>) => {
    const [result] = await prepared<{ accepted: number; queued: QueuedRow[] }>(tx, text, [jsonRows([{ ...def.row(event), event_id: event.id }])]);
    if (!result || result.accepted === 0) throw def.reject?.(event) ?? new Error(`event ${event.id} was not accepted`);
    queueAfterCommit(tx, toMessages(result.queued));
  };
  return Object.assign(handler, { [STATEMENT_HANDLER]: def });
}

/**
 * The runner's batch statement for a definition: $1 consumer, $2 instance, $3 rows (each with
 * event_id, subject, stream_seq and the definition's columns). Returns the accepted event ids,
 * how many were new to the inbox, and the outbox rows to hand to the relay.
 */
export function batchStatement(def: StatementHandler): string {
  return `with input as (
  select * from json_to_recordset($3::text::json) as r(n int, event_id text, subject text, stream_seq bigint, ${def.columns})
), accepted as (
  select * from input r where ${def.accept ?? "true"}
), fresh as (
  insert into inbox (consumer, event_id, subject, stream_seq, processed_by)
  select $1::text, event_id, subject, stream_seq, $2::text from accepted order by n
  on conflict do nothing
  returning event_id
), applied as (
  -- the same event twice in one batch is applied once, like two deliveries would be
  select distinct on (event_id) * from accepted where event_id in (select event_id from fresh) order by event_id, n
)${def.apply}
select (select coalesce(json_agg(event_id), '[]'::json) from accepted) as accepted,
  (select count(*)::int from fresh) as fresh,
  ${queuedJson(def)} as queued`;
}

export interface BatchStatementResult {
  accepted: string[];
  fresh: number;
  queued: OutboxMessage[];
}

/** Runs a definition's batch statement (autocommit: its own transaction). */
export async function runBatchStatement(
  ex: Parameters<typeof prepared>[0],
  text: string,
  def: StatementHandler,
  consumer: string,
  instance: string | undefined,
  events: { event: CloudEvent; subject: string; streamSeq: number }[],
): Promise<BatchStatementResult> {
  const rows = events.map((e) => ({ ...def.row(e.event), event_id: e.event.id, subject: e.subject, stream_seq: e.streamSeq }));
  const [result] = await prepared<{ accepted: string[]; fresh: number; queued: QueuedRow[] }>(ex, text, [consumer, instance ?? null, jsonRows(rows)]);
  return { accepted: result?.accepted ?? [], fresh: result?.fresh ?? 0, queued: toMessages(result?.queued ?? []) };
}
