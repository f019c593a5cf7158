import { headers as natsHeaders } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Db } from "../db/database.js";
import { prepared } from "../db/statement.js";
import { reportableError } from "../db/errors.js";
import type { Names } from "../nats/names.js";
import type { OutboxMessage } from "./handoff.js";
import { abortableDelay, backoffMs } from "../lifecycle/delay.js";
import { PublishRejectedError, storedAck, type AckedPublisher } from "../nats/acked-publisher.js";
import { Fifo } from "./fifo.js";

// Fixed texts, prepared once per connection (see prepared()). seq travels as text: int8 is a
// string in postgres.js and may be a bigint elsewhere, neither of which JSON.stringify takes.
// A claimed row is deleted in the claiming transaction, which commits only after JetStream has
// acknowledged it: cheaper than marking it (no new row version, no index entries) and the
// outbox stays as small as the backlog. The stream and the event log keep the history.
// The poll claims only rows older than a grace period unless told otherwise: younger ones were
// most likely handed over by their committer and are being published right now. created_at and
// now() are both the database's clock (the insert leaves created_at to its default), so the app's
// clock, however wrong, cannot hide a row from the poll.
const CLAIM = `delete from outbox where seq in (
  select seq from outbox where created_at < now() - $2::int * interval '1 millisecond' and seq > $3::bigint
  order by seq limit $1::int for update skip locked
) returning seq::text as seq, event_id, subject, payload, headers, created_at`;
// "= any(array(…))" keeps this an index lookup; "in (select …)" plans as a scan of the table.
const SENT = "delete from outbox where event_id = any(array(select value::uuid from json_array_elements_text($1::text::json)))";
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
  /** createAckedPublisher(nc) in the services; any JetStreamClient works too. */
  js: AckedPublisher;
  names: Names;
  log: Logger;
  /** Rows claimed and published per transaction (they are published concurrently). */
  batchSize?: number;
  /** Fallback poll for rows nobody handed over: other replicas' leftovers, failed publishes. */
  pollMs?: number;
  /** The poll leaves rows younger than this to the hand-over that is probably publishing them. */
  graceMs?: number;
  /** Handed-over messages being published at once; more wait in line. */
  maxInFlight?: number;
  /** Handed-over messages waiting beyond this are left to the poll (e.g. while NATS is down). */
  maxWaiting?: number;
  /** Acknowledged rows are deleted once this many have gathered, or after `deleteLingerMs`. */
  deleteBatch?: number;
  deleteLingerMs?: number;
  /** Told of every publish's result (for metrics): stored by JetStream, or failed. */
  onPublish?: (stored: boolean) => void;
  /**
   * Whether the NATS connection is up. While it is not, the poll claims nothing: it would hold
   * its transaction (and, on PGlite, the whole database) open until every publish timed out.
   */
  connected?: () => boolean;
  /**
   * Told when JetStream answers that no stream takes a subject (a lost store, a deleted stream),
   * to create the streams again; the row stays for the poll's next attempt meanwhile.
   */
  onNoStream?: () => void;
}

export interface OutboxRelay {
  start(): void;
  /**
   * Publishes messages whose outbox rows have just committed, then deletes those rows in
   * batches. A message that fails here stays in the outbox for the poll.
   */
  handOff(messages: readonly OutboxMessage[]): void;
  /**
   * Claims and publishes one batch of rows; returns how many went out. `all` includes rows
   * younger than the grace period (at shutdown, once hand-overs are done; and in tests).
   */
  relayOnce(opts?: { all?: boolean }): Promise<number>;
  /** Stops polling and waits for hand-overs in flight and their deletes. */
  stop(): Promise<void>;
}

/**
 * Publishes outbox rows to JetStream and removes them once published.
 *
 * The fast path: the code that committed the rows hands their messages over, they are
 * published at once (a bounded window of async publishes), and the acknowledged ones are
 * deleted in batches, one statement per batch. A crash before the delete leaves rows behind;
 * the poll republishes them and the stream drops the copies, since the Nats-Msg-Id (the event id)
 * is inside its duplicate window.
 *
 * The poll: rows older than `graceMs` are claimed with `FOR UPDATE SKIP LOCKED`, so relays on
 * several replicas split the work, and deleted in the claiming transaction, which commits only
 * after JetStream acknowledged them. A batch with failures moves the next claim past it, so
 * rows that always fail are retried in turn rather than claimed first every time.
 */
export function createOutboxRelay({
  db,
  js,
  names,
  log,
  batchSize = 256,
  pollMs = 1000,
  graceMs = 3000,
  maxInFlight = 1024,
  maxWaiting = 50_000,
  deleteBatch = 256,
  deleteLingerMs = 10,
  onPublish,
  connected,
  onNoStream,
}: OutboxRelayOptions): OutboxRelay {
  let loop: Promise<void> | undefined;
  const abort = new AbortController();

  // Always a promise, also when a header or subject is refused before anything is sent, so a
  // failure only ever leaves the row to a later attempt. Only an ack that the stream stored the
  // message (see storedAck) lets the row go.
  const publish = (m: { subject: string; payload: string; eventId: string; headers: Record<string, string> }) => {
    try {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(m.headers)) h.set(k, v);
      let stored = js.publish(names.subject(m.subject), m.payload, { msgID: m.eventId, headers: h }).then(storedAck);
      if (onNoStream) stored = stored.catch((err: unknown) => (err instanceof PublishRejectedError && err.noStream && onNoStream(), Promise.reject(err)));
      return onPublish ? stored.then((ack) => (onPublish(true), ack), (err: unknown) => (onPublish(false), Promise.reject(err))) : stored;
    } catch (err) {
      onPublish?.(false);
      return Promise.reject(err as Error);
    }
  };

  // Hand-over: waiting → in flight → acknowledged ids → one DELETE per batch of ids.
  const waiting = new Fifo<{ m: OutboxMessage; at: number }>();
  let inFlight = 0;
  const sent: string[] = [];
  let deleting: Promise<void> | undefined;
  let linger: NodeJS.Timeout | undefined;
  let idle: (() => void) | undefined;
  let stopping: Promise<void> | undefined;

  function pump() {
    while (inFlight < maxInFlight && waiting.length > 0) {
      const { m, at } = waiting.shift()!;
      // Waited past the grace period (NATS slow or down): the poll may have published it
      // already, and a copy sent much later could fall outside the stream's dedupe window.
      if (Date.now() - at > graceMs) continue;
      inFlight += 1;
      publish(m).then(
        () => {
          sent.push(m.eventId);
          scheduleDelete();
        },
        (err: unknown) => log.debug({ err: String(err), eventId: m.eventId }, "hand-over publish failed; the poll will retry"),
      ).finally(() => {
        inFlight -= 1;
        pump();
        settle();
      });
    }
  }

  // Deleting is off the event's path, so it waits a moment for more rows: far fewer statements
  // at any rate, and the rows are gone long before the poll's grace period would reach them.
  function scheduleDelete(now = false) {
    if (deleting) return; // the running loop takes the new ids too
    if (now || sent.length >= deleteBatch) {
      clearTimeout(linger);
      linger = undefined;
      deleting = deleteSent();
    } else {
      linger ??= setTimeout(() => {
        linger = undefined;
        deleting ??= deleteSent();
      }, deleteLingerMs);
    }
  }

  async function deleteSent() {
    while (sent.length > 0) {
      const ids = sent.splice(0, 4 * deleteBatch);
      try {
        await prepared(db, SENT, [JSON.stringify(ids)]);
      } catch (err) {
        // The rows stay; the poll republishes them and the stream's dedupe drops the copies.
        log.warn({ err: reportableError(err).message, rows: ids.length }, "could not delete published outbox rows; the poll will retry them");
      }
    }
    deleting = undefined;
    settle();
  }

  function settle() {
    if (inFlight === 0 && waiting.length === 0 && !deleting && !linger) idle?.();
  }

  // Where the poll's next claim starts: past a batch in which some rows failed, so rows that
  // JetStream keeps refusing (a subject no stream takes, a payload over the size limit) cannot
  // hold up the rows behind them; back at the start once nothing is left past it.
  let after = "0";

  async function relayOnce({ all = false }: { all?: boolean } = {}): Promise<number> {
    return db.transaction(async (tx) => {
      const claim = (from: string) => prepared<ClaimedRow>(tx, CLAIM, [batchSize, all ? 0 : graceMs, from]);
      let rows = await claim(after);
      if (rows.length === 0 && after !== "0") rows = await claim((after = "0"));
      if (rows.length === 0) return 0;
      // DELETE … RETURNING has no order; publish in outbox order.
      rows.sort((a, b) => Number(a.seq) - Number(b.seq));
      const results = await Promise.allSettled(rows.map((row) => publish({ ...row, eventId: row.event_id })));
      const failed = rows.filter((_, i) => results[i]!.status === "rejected");
      if (failed.length > 0) {
        after = rows.at(-1)!.seq;
        const reason = (results.find((r) => r.status === "rejected") as PromiseRejectedResult).reason;
        // Nothing went out: roll back, every row stays. Otherwise keep the published rows'
        // deletion and put the others back (same seq), so one bad row cannot hold up the rest.
        if (failed.length === rows.length) throw reason;
        await prepared(tx, REQUEUE, [JSON.stringify(failed)]);
        log.warn({ err: reportableError(reason).message, failed: failed.length }, "some outbox rows not published; will retry");
      }
      return rows.length - failed.length;
    });
  }

  async function run() {
    let failures = 0;
    while (!abort.signal.aborted) {
      if (connected && !connected()) {
        await abortableDelay(pollMs, abort.signal).catch(() => {});
        continue;
      }
      try {
        const n = await relayOnce();
        failures = 0;
        if (n === batchSize) continue; // more may be waiting
      } catch (err) {
        failures += 1;
        if (failures === 1 || failures % 20 === 0) log.warn({ err: reportableError(err).message, failures }, "outbox relay failed; retrying");
        await abortableDelay(backoffMs(failures, 100), abort.signal).catch(() => {});
        continue;
      }
      await abortableDelay(pollMs, abort.signal).catch(() => {});
    }
  }

  return {
    start() {
      loop ??= run();
    },
    handOff(messages) {
      if (abort.signal.aborted) return; // stopping: the rows stay for the next start
      const room = Math.max(0, maxWaiting - waiting.length);
      // Beyond the line's length (NATS down, say) the rows simply wait for the poll.
      const at = Date.now();
      for (const m of room >= messages.length ? messages : messages.slice(0, room)) waiting.push({ m, at });
      pump();
    },
    relayOnce,
    stop() {
      stopping ??= (async () => {
        abort.abort();
        waiting.clear();
        await loop;
        if (inFlight > 0 || deleting || linger) {
          const done = new Promise<void>((resolve) => (idle = resolve));
          if (linger) scheduleDelete(true);
          await done;
        }
      })();
      return stopping;
    },
  };
}
