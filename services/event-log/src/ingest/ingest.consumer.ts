import type { JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import { createPullLoop, ensureDurableConsumer, eventLatencySeconds, hasUnreadableHeaders, headersOf, isPermanentDbError, reportableError, streamCatalog, type Deliveries, type Logger, type Outcome, type PullLoop, type PullLoopOptions, type Names, type StreamName } from "@orderflow/shared";
import { refusedRow, toEventRow, unreadableRow } from "./ingest.domain.js";
import type { EventWriter } from "./ingest.store.js";

export interface IngestOptions {
  /** The connection `js` uses (see Settle in the shared pull loop). */
  nc: PullLoopOptions["nc"];
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: Names;
  log: Logger;
  writer: EventWriter;
  stream: StreamName;
  batchSize?: number;
  /** How long a partial batch waits for more messages before it is written. */
  lingerMs?: number;
  /** Delay before a batch that failed to store is redelivered. */
  retryDelayMs?: number;
  /** Re-creates the streams when this one has gone (see DurableSettings). */
  restoreStreams?: () => Promise<void>;
  /** Messages finished with: `applied` (stored), `duplicate` (stored before), `retry` (a batch that failed). */
  onOutcome?: (outcome: Outcome, n: number) => void;
  /** Seconds from the stream storing each event to its ack, for the events this batch stored. */
  onLatency?: (seconds: number) => void;
}

export type IngestConsumer = PullLoop;

function reportLatency(batch: readonly JsMsg[], stored: ReadonlySet<number>, report: (seconds: number) => void) {
  const now = Date.now();
  for (const msg of batch) {
    if (!stored.has(msg.seq)) continue;
    const seconds = eventLatencySeconds(msg, now);
    if (seconds !== undefined) report(seconds);
  }
}

/** The durable name of the log's consumer on a stream, before the namespace prefix. */
export const ingestDurable = (stream: StreamName) => `event-log-${stream.toLowerCase()}`;

/**
 * A durable pull consumer that stores every message of one stream. Unlike the shared runner it
 * handles raw messages in batches: it stores invalid events too (flagged) instead of
 * dead-lettering them, and acks a batch only after the insert committed. It never gives up on a
 * message (max_deliver -1): a database outage delays the log, it does not lose events.
 */
export function createIngestConsumer(o: IngestOptions): IngestConsumer {
  const { js, names, log, stream, writer } = o;
  const batchSize = o.batchSize ?? 200;
  const lingerMs = o.lingerMs ?? 20;
  const retryDelayMs = o.retryDelayMs ?? 1000;
  const durable = ingestDurable(stream);
  // A consumer has one filter here (nats-server 2.9): the stream's one subject pattern covers
  // all of it. A stream with two would have its second silently missing from the log.
  const subjects = streamCatalog[stream].subjects;
  if (subjects.length !== 1) throw new Error(`the event log takes each stream through one subject pattern; ${stream} has ${subjects.length}: make it one (e.g. "${stream.toLowerCase()}.>")`);

  const ensure = () =>
    ensureDurableConsumer(o.jsm, names, {
      stream,
      durable,
      filterSubject: subjects[0]!,
      maxDeliver: -1,
      ackWaitMs: 30_000,
      maxAckPending: batchSize * 5,
      restoreStreams: o.restoreStreams,
    });

  let buffer: JsMsg[] = [];
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();

  const rowOf = (msg: JsMsg) => {
    const m = { stream, streamSeq: msg.seq, streamTime: msg.time, subject: names.logicalSubject(msg.subject), data: msg.data, headers: headersOf(msg) };
    try {
      const row = toEventRow(m);
      if (!hasUnreadableHeaders(msg)) return row;
      return { ...row, valid: false, error: [row.error, "its NATS headers could not be decoded (not stored)"].filter(Boolean).join("; ") };
    } catch (err) {
      return unreadableRow(m, reportableError(err).message);
    }
  };

  const nakAll = (batch: JsMsg[]) => {
    for (const msg of batch) loop.settle.nak(msg, retryDelayMs);
  };

  async function store(batch: JsMsg[], rows = batch.map(rowOf)): Promise<void> {
    try {
      const stored = await writer.write(rows);
      for (const msg of batch) loop.settle.ack(msg);
      o.onOutcome?.("applied", stored.length);
      o.onOutcome?.("duplicate", rows.length - stored.length);
      // Stored now only: a redelivery of an event stored earlier (its ack lost) was reported then.
      if (o.onLatency && stored.length > 0) reportLatency(batch, new Set(stored), o.onLatency);
      return;
    } catch (err) {
      // A row Postgres refuses for its values must not hold the rest of its batch, again on
      // every redelivery (with more messages joining it until the consumer stops at
      // max_ack_pending): each is tried alone, and the one refused is kept as a note of where it
      // is. Other errors (the database away, read-only, a missing grant) are the same for every
      // row and wait for a redelivery of the whole batch.
      if (isPermanentDbError(err)) {
        if (batch.length > 1) {
          log.warn({ stream, count: batch.length, err: reportableError(err).message }, "Postgres refused a row of a batch; storing its events one at a time");
          for (let i = 0; i < batch.length; i++) await store([batch[i]!], [rows[i]!]);
          return;
        }
        const kept = refusedRow(rows[0]!, reportableError(err).message);
        if (kept) {
          log.error({ stream, streamSeq: batch[0]!.seq, err: reportableError(err).message }, "Postgres refused an event's row; storing where it is instead");
          return store(batch, [kept]);
        }
      }
      log.warn({ stream, count: batch.length, err: reportableError(err).message, retryInMs: retryDelayMs }, "storing events failed; retrying");
      o.onOutcome?.("retry", batch.length);
      nakAll(batch);
    }
  }

  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    if (buffer.length === 0) return flushing;
    const batch = buffer;
    buffer = [];
    // The chain must never stay rejected: every later batch would be skipped, and the linger
    // timer's flush would be an unhandled rejection that ends the process.
    flushing = flushing
      .then(() => store(batch))
      .catch((err) => {
        log.error({ stream, count: batch.length, err: reportableError(err).message, retryInMs: retryDelayMs }, "storing events failed unexpectedly; retrying");
        nakAll(batch);
      });
    return flushing;
  }

  // Buffered messages are written when the batch fills or a short linger passes; once the
  // iterator ends (stop, or a stall being recovered), what is left is written before returning.
  async function drain(current: Deliveries, signal: AbortSignal) {
    for await (const msg of current) {
      if (signal.aborted) {
        // After a delay, as the runner hands back: at once, the server could send it straight
        // back to this closing pull, where it would wait out ack_wait.
        loop.settle.nak(msg, 1000);
        continue;
      }
      buffer.push(msg);
      // A full batch is written before reading on; a partial one after a short linger.
      if (buffer.length >= batchSize) await flush();
      else timer ??= setTimeout(() => void flush(), lingerMs);
    }
    await flush();
  }

  // Bounded in bytes: the log keeps messages of any size until their batch is stored.
  const loop = createPullLoop({ nc: o.nc, js, names, log, stream, durable, ensure, maxMessages: batchSize * 2, maxBytes: 8 * 1024 * 1024, drain });
  return {
    start: () => loop.start(),
    async stop() {
      await loop.stop();
      await flush();
    },
  };
}
