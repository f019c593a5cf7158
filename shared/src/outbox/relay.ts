import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Db } from "../db/database.js";
import { prepared } from "../db/statement.js";
import type { Names } from "../nats/names.js";
import { abortableDelay } from "../nats/connect.js";

// Fixed texts, prepared once per connection (see prepared()). seq travels as text: int8 is a
// string in postgres.js and may be a bigint elsewhere, neither of which JSON.stringify takes.
// A claimed row is deleted in the claiming transaction, which commits only after JetStream has
// acknowledged it: cheaper than marking it (no new row version, no index entries) and the
// outbox stays as small as the backlog. The stream and the event log keep the history.
const CLAIM = `delete from outbox where seq in (
  select seq from outbox order by seq limit $1::int for update skip locked
) returning seq::text as seq, event_id, subject, payload, headers, created_at`;
const REQUEUE = `insert into outbox (seq, event_id, subject, payload, headers, created_at)
select seq, event_id, subject, payload, headers, created_at
from json_to_recordset($1::text::json) as r(seq bigint, event_id uuid, subject text, payload text, headers jsonb, created_at timestamptz)`;

interface ClaimedRow {
  seq: string;
  event_id: string;
  subject: string;
  payload: string;
  headers: Record<string, string>;
  created_at: Date;
}

export interface OutboxRelayOptions {
  db: Db;
  js: JetStreamClient;
  names: Names;
  log: Logger;
  /** Rows claimed and published per transaction (they are published concurrently). */
  batchSize?: number;
  /** Fallback poll for rows written by other replicas or missed signals. */
  pollMs?: number;
}

export interface OutboxRelay {
  start(): void;
  /** Wakes the relay now, e.g. right after a transaction that wrote outbox rows commits. */
  notify(): void;
  /** Publishes one batch; returns how many rows were published. Exposed for tests. */
  relayOnce(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Publishes outbox rows to JetStream and removes them once published.
 *
 * Rows are claimed with `FOR UPDATE SKIP LOCKED`, so relays on several replicas split the work
 * instead of publishing the same row twice. A row's removal commits only after JetStream
 * acknowledged it; a crash between the ack and the commit leaves the row in place to be
 * republished, and the stream drops the copy because the Nats-Msg-Id (the event id) is inside
 * its duplicate window.
 */
export function createOutboxRelay({
  db,
  js,
  names,
  log,
  batchSize = 256,
  pollMs = 1000,
}: OutboxRelayOptions): OutboxRelay {
  let wake: (() => void) | undefined;
  let pending = false;
  let loop: Promise<void> | undefined;
  const abort = new AbortController();

  async function relayOnce(): Promise<number> {
    return db.transaction(async (tx) => {
      // DELETE … RETURNING has no order; publish in outbox order.
      const rows = (await prepared<ClaimedRow>(tx, CLAIM, [batchSize])).sort((a, b) => Number(a.seq) - Number(b.seq));
      if (rows.length === 0) return 0;
      const results = await Promise.allSettled(
        rows.map((row) => {
          const h = natsHeaders();
          for (const [k, v] of Object.entries(row.headers)) h.set(k, v);
          return js.publish(names.subject(row.subject), row.payload, { msgID: row.event_id, headers: h });
        }),
      );
      const failed = rows.filter((_, i) => results[i]!.status === "rejected");
      if (failed.length > 0) {
        const reason = (results.find((r) => r.status === "rejected") as PromiseRejectedResult).reason;
        // Nothing went out: roll back, every row stays. Otherwise keep the published rows'
        // deletion and put the others back (same seq), so one bad row cannot hold up the rest.
        if (failed.length === rows.length) throw reason;
        await prepared(tx, REQUEUE, [JSON.stringify(failed)]);
        log.warn({ err: String(reason), failed: failed.length }, "some outbox rows not published; will retry");
      }
      return rows.length - failed.length;
    });
  }

  async function run() {
    let failures = 0;
    while (!abort.signal.aborted) {
      pending = false;
      try {
        const n = await relayOnce();
        failures = 0;
        if (n === batchSize) continue; // more may be waiting
      } catch (err) {
        failures += 1;
        if (failures === 1 || failures % 20 === 0) log.warn({ err: (err as Error).message, failures }, "outbox relay failed; retrying");
        await abortableDelay(Math.min(5000, 100 * 2 ** Math.min(failures, 6)), abort.signal).catch(() => {});
        continue;
      }
      if (pending) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, pollMs);
        function done() {
          clearTimeout(timer);
          wake = undefined;
          abort.signal.removeEventListener("abort", done);
          resolve();
        }
        wake = done;
        abort.signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  return {
    start() {
      loop ??= run();
    },
    notify() {
      pending = true;
      wake?.();
    },
    relayOnce,
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
