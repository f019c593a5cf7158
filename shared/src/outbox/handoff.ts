import { PgTransaction } from "drizzle-orm/pg-core";
import type { Db, Executor, Tx } from "../db/database.js";

/** An outbox row as the relay publishes it. */
export interface OutboxMessage {
  eventId: string;
  subject: string;
  payload: string;
  headers: Record<string, string>;
}

const QUEUED: unique symbol = Symbol("orderflow.outbox.queued");
type Queuing = { [QUEUED]?: OutboxMessage[] };

/**
 * Remembers messages written to the outbox inside `tx`, so whoever commits it can hand them to
 * the relay at once (`takeQueued` after the commit) instead of the relay reading them back.
 * Outside a transaction nothing is remembered: those rows are found by the relay's poll.
 */
export function queueAfterCommit(tx: Executor, messages: readonly OutboxMessage[]): void {
  if (messages.length === 0 || !(tx instanceof PgTransaction)) return;
  const queuing = tx as unknown as Queuing;
  (queuing[QUEUED] ??= []).push(...messages);
}

/** The messages queued in a transaction that has committed (each returned once). */
export function takeQueued(tx: Tx | undefined): OutboxMessage[] {
  if (!tx) return [];
  const queuing = tx as unknown as Queuing;
  const messages = queuing[QUEUED] ?? [];
  delete queuing[QUEUED];
  return messages;
}

/**
 * Runs `fn` in a transaction and, once it has committed, returns its result with the outbox
 * messages queued in it, for the committer to hand to the relay.
 */
export async function transactionWithQueued<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<{ result: T; queued: OutboxMessage[] }> {
  let committed: Tx | undefined;
  const result = await db.transaction((tx) => {
    committed = tx;
    return fn(tx);
  });
  return { result, queued: takeQueued(committed) };
}
