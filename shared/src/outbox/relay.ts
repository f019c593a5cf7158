import { and, isNotNull, lt } from "drizzle-orm";
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Db } from "../db/database.js";
import { outbox } from "../db/tables.js";
import { prepared } from "../db/statement.js";
import type { Names } from "../nats/names.js";
import { abortableDelay } from "../nats/connect.js";

// Fixed texts, prepared once per connection (see prepared()). seq travels as text: int8 is a
// string in postgres.js and may be a bigint elsewhere, neither of which JSON.stringify takes.
const CLAIM = `select seq::text as seq, event_id, subject, payload, headers from outbox
where published_at is null order by seq limit $1::int for update skip locked`;
const MARK_PUBLISHED = "update outbox set published_at = now() where seq in (select value::bigint from json_array_elements_text($1::text::json))";

interface ClaimedRow {
  seq: string;
  event_id: string;
  subject: string;
  payload: string;
  headers: Record<string, string>;
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
  /** Published rows older than this are deleted. */
  retentionMs?: number;
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
 * Publishes outbox rows to JetStream and marks them published.
 *
 * Rows are claimed with `FOR UPDATE SKIP LOCKED`, so relays on several replicas split the work
 * instead of publishing the same row twice. A row is marked only after JetStream acknowledged
 * it; a crash between the ack and the commit republishes the row, and the stream drops the
 * copy because the Nats-Msg-Id (the event id) is inside its duplicate window.
 */
export function createOutboxRelay({
  db,
  js,
  names,
  log,
  batchSize = 256,
  pollMs = 1000,
  retentionMs = 3600_000,
}: OutboxRelayOptions): OutboxRelay {
  let wake: (() => void) | undefined;
  let pending = false;
  let loop: Promise<void> | undefined;
  const abort = new AbortController();
  let lastPurge = 0;

  async function relayOnce(): Promise<number> {
    return db.transaction(async (tx) => {
      const rows = await prepared<ClaimedRow>(tx, CLAIM, [batchSize]);
      if (rows.length === 0) return 0;
      const results = await Promise.allSettled(
        rows.map((row) => {
          const h = natsHeaders();
          for (const [k, v] of Object.entries(row.headers)) h.set(k, v);
          return js.publish(names.subject(row.subject), row.payload, { msgID: row.event_id, headers: h });
        }),
      );
      const published = rows.filter((_, i) => results[i]!.status === "fulfilled").map((r) => r.seq);
      if (published.length > 0) {
        await prepared(tx, MARK_PUBLISHED, [JSON.stringify(published)]);
      }
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) {
        // Unpublished rows stay in the outbox and are retried; nothing is dropped.
        if (published.length === 0) throw failed.reason;
        log.warn({ err: String(failed.reason), failed: rows.length - published.length }, "some outbox rows not published; will retry");
      }
      return published.length;
    });
  }

  async function purge() {
    if (Date.now() - lastPurge < 60_000) return;
    lastPurge = Date.now();
    await db
      .delete(outbox)
      .where(and(isNotNull(outbox.publishedAt), lt(outbox.publishedAt, new Date(Date.now() - retentionMs))));
  }

  async function run() {
    let failures = 0;
    while (!abort.signal.aborted) {
      pending = false;
      try {
        const n = await relayOnce();
        failures = 0;
        if (n === batchSize) continue; // more may be waiting
        await purge();
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
