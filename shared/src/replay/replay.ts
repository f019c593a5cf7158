import { DeliverPolicy, type Consumer, type JetStreamClient, type JetStreamManager, type JsMsg, type OrderedConsumerOptions } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { Db, Tx } from "../db/database.js";
import type { StreamName } from "../events/catalog.js";
import type { Names } from "../nats/names.js";
import { isNotFound } from "../nats/streams.js";
import { headersOf } from "../nats/headers.js";

/** A stored message as a replay target sees it: raw bytes and where they sit in the stream. */
export interface ReplayMessage {
  stream: StreamName;
  seq: number;
  /** Subject without the namespace prefix. */
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
  /** When JetStream stored it. */
  storedAt: Date;
}

export interface BatchResult {
  applied: number;
  /** Already applied (found in the inbox or the log). */
  skipped: number;
  /** Could never apply: invalid, unknown type, or a permanent handler error. */
  failed: number;
  /** Which events failed and why, when the target can say (the replay logs the first ones). */
  failures?: FailedEvent[];
}

/** An event a target could not apply: the same ones the live consumer dead-letters. */
export interface FailedEvent {
  stream: StreamName;
  seq: number;
  subject: string;
  /** The CloudEvent id, or the Nats-Msg-Id of one that does not decode. */
  eventId?: string;
  /** Error class and message, as a dead letter's headers give them. */
  reason: string;
}

/** How many failed events a replay logs one by one; the rest only as a count, so a bad stream cannot flood the log. */
export const LOGGED_FAILURES = 20;

/**
 * A read model that can be rebuilt from stream history. `reset` clears it (and the inbox rows
 * that would otherwise make re-applied events look like duplicates) in one transaction.
 */
export interface ReplayTarget {
  name: string;
  sources: { stream: StreamName; filterSubject?: string }[];
  reset(tx: Tx): Promise<void>;
  apply(tx: Tx, batch: ReplayMessage[]): Promise<BatchResult>;
  /**
   * Dry run: what `apply` would do, without writing. `full` means "as if after a reset".
   * `counted` is the run's own: the keys earlier batches counted as applied, so a later copy of
   * the same event (a stream can hold several) is counted as skipped, as `apply` would skip it.
   */
  preview(db: Db, batch: ReplayMessage[], full: boolean, counted: Set<string>): Promise<BatchResult>;
}

export interface ReplayOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: Names;
  db: Db;
  target: ReplayTarget;
  fromSeq?: number;
  fromTime?: Date;
  dryRun?: boolean;
  batchSize?: number;
  log?: Logger;
  onProgress?: (read: number, total: number, counts: BatchResult) => void;
  /** How long the replay waits for a message before asking the server whether any are left. */
  idleCheckMs?: number;
  /** A full rebuild even though a source stream no longer holds all it once did (see IncompleteHistoryError). */
  force?: boolean;
  /** Stops after the batch in hand (Ctrl-C): the replay then throws ReplayInterruptedError. */
  signal?: AbortSignal;
  /** How long the server may not answer (NATS lost) before the replay gives up. */
  unreachableAfterMs?: number;
}

/** What a source stream no longer holds: messages before `firstSeq`, and `deleted` ones in between. */
export interface LostHistory {
  stream: string;
  firstSeq: number;
  deleted: number;
}

/**
 * A full rebuild refused: it resets the read model, and a source stream no longer holds all the
 * messages that built it (expired with max_age, purged, or dead letters replayed or purged), so
 * what they contributed would be lost for good.
 */
export class IncompleteHistoryError extends Error {
  override name = "IncompleteHistoryError";
  constructor(readonly lost: LostHistory[]) {
    super(
      `a full rebuild would lose what the streams no longer hold (${describeLost(lost)}): it resets the read model first. ` +
        "Re-apply without a reset with --from-seq or --from-time, or rebuild from what is left with --force",
    );
  }
}

export const describeLost = (lost: readonly LostHistory[]) =>
  lost
    .map((l) => `${l.stream}: ${[l.firstSeq > 1 ? `messages 1-${l.firstSeq - 1} are gone` : "", l.deleted > 0 ? `${l.deleted} deleted` : ""].filter(Boolean).join(", ")}`)
    .join("; ");

/** The replay stopped when asked to (its signal), after the batch in hand. */
export class ReplayInterruptedError extends Error {
  override name = "ReplayInterruptedError";
}

export interface ReplayResult extends BatchResult {
  read: number;
  /** True when the projection was reset first (a full rebuild that was not a dry run). */
  reset: boolean;
  dryRun: boolean;
  ms: number;
  /** For a full rebuild: what the streams no longer hold (a dry run reports it instead of refusing). */
  lost: LostHistory[];
}

/**
 * Rebuilds `target` from stream history with ordered consumers (no durable state, no acks):
 * without `fromSeq`/`fromTime` it resets the projection first, then re-applies every stored
 * event in stream order, in batches of one transaction each. Safe beside the live service: the
 * inbox (or the log's unique stream position) makes every event apply at most once.
 */
export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const { js, jsm, names, db, target, dryRun = false, batchSize = 200, idleCheckMs = 2000, unreachableAfterMs = 30_000 } = opts;
  const started = Date.now();
  const full = opts.fromSeq === undefined && opts.fromTime === undefined;
  const counts: BatchResult = { applied: 0, skipped: 0, failed: 0 };

  const consumers: { stream: StreamName; consumer: Consumer; pending: number }[] = [];
  const lost: LostHistory[] = [];
  try {
    for (const source of target.sources) {
      const streamName = names.stream(source.stream);
      const info = await jsm.streams.info(streamName).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
        throw new Error(`stream ${streamName} does not exist: check NATS_URL and NATS_NAMESPACE (the services create their streams when they first start)`, { cause: err });
      });
      // Only the whole history rebuilds what a reset clears.
      if (full && (info.state.first_seq > 1 || (info.state.num_deleted ?? 0) > 0)) lost.push({ stream: streamName, firstSeq: info.state.first_seq, deleted: info.state.num_deleted ?? 0 });
      if (info.state.messages === 0) continue;
      const config: Partial<OrderedConsumerOptions> = {
        ...(source.filterSubject ? { filter_subjects: names.subject(source.filterSubject) } : {}),
        ...(opts.fromTime
          ? { opt_start_time: opts.fromTime.toISOString() }
          : opts.fromSeq !== undefined
            ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: opts.fromSeq }
            : { deliver_policy: DeliverPolicy.All }),
      };
      const consumer = await js.consumers.get(streamName, config);
      const pending = (await consumer.info(true)).num_pending;
      consumers.push({ stream: source.stream, consumer, pending });
    }

    if (full && !dryRun && lost.length > 0 && !opts.force) throw new IncompleteHistoryError(lost);
    if (opts.signal?.aborted) throw new ReplayInterruptedError("stopped before anything was changed, as asked");
    if (full && !dryRun) await db.transaction((tx) => target.reset(tx));

    const counted = new Set<string>(); // a dry run's, see ReplayTarget.preview
    let total = consumers.reduce((n, c) => n + c.pending, 0);
    let read = 0;
    opts.onProgress?.(0, total, counts);
    let logged = 0;
    const add = (r: BatchResult) => {
      counts.applied += r.applied;
      counts.skipped += r.skipped;
      counts.failed += r.failed;
      // Named as they happen, so the operator can find them (dlq list, the stream) even when the run stops later.
      for (const f of (r.failures ?? []).slice(0, LOGGED_FAILURES - logged)) {
        logged += 1;
        opts.log?.warn({ target: target.name, stream: names.stream(f.stream), seq: f.seq, subject: f.subject, eventId: f.eventId, reason: f.reason.slice(0, 2000) }, dryRun ? "event would fail to apply" : "event could not be applied");
      }
    };

    for (const { stream, consumer, pending } of consumers) {
      if (pending === 0) continue;
      const messages = await consumer.consume({ max_messages: batchSize * 2 });
      let batch: ReplayMessage[] = [];
      let remaining = pending;
      const flush = async () => {
        if (batch.length === 0) return;
        const current = batch;
        batch = [];
        add(dryRun ? await target.preview(db, current, full, counted) : await db.transaction((tx) => target.apply(tx, current)));
        read += current.length;
        // Events published during the replay are caught up too; the total grows with them.
        total = Math.max(total, read + remaining);
        opts.onProgress?.(read, total, counts);
      };
      // The count taken at the start can outrun the stream: messages deleted meanwhile (a purge,
      // `dlq replay`, max_age) never arrive to say "0 pending". While the loop waits with
      // nothing to read, the server is asked; if it has nothing left either, the stream is done.
      // A server that does not answer for unreachableAfterMs (NATS lost) ends the wait too, as a failure.
      let waitingSince: number | undefined = Date.now();
      let failingSince: number | undefined;
      let unreachable = false;
      const idle = setInterval(() => {
        if (waitingSince === undefined || Date.now() - waitingSince < idleCheckMs) return;
        void consumer
          .info()
          .then((info) => {
            failingSince = undefined;
            if (info.num_pending === 0 && waitingSince !== undefined && Date.now() - waitingSince >= idleCheckMs) messages.stop();
          })
          .catch(() => {
            failingSince ??= Date.now();
            if (Date.now() - failingSince >= unreachableAfterMs) {
              unreachable = true;
              messages.stop();
            }
          });
      }, idleCheckMs);
      const interrupt = () => messages.stop();
      opts.signal?.addEventListener("abort", interrupt, { once: true });
      try {
        for await (const msg of messages) {
          waitingSince = undefined;
          batch.push({ stream, seq: msg.seq, subject: names.logicalSubject(msg.subject), data: msg.data, headers: headersOf(msg), storedAt: msg.time });
          remaining = msg.info.pending;
          if (remaining === 0 || batch.length >= batchSize) await flush();
          if (remaining === 0 || opts.signal?.aborted) break;
          waitingSince = Date.now();
        }
        await flush();
        if (opts.signal?.aborted) throw new ReplayInterruptedError(`stopped after ${read} of ${total} events, as asked`);
        if (unreachable) throw new Error(`NATS did not answer for ${Math.round(unreachableAfterMs / 1000)} s; stopped after ${read} of ${total} events`);
      } finally {
        opts.signal?.removeEventListener("abort", interrupt);
        clearInterval(idle);
        messages.stop();
      }
    }
    if (counts.failed > logged) opts.log?.warn({ target: target.name, failed: counts.failed, logged }, `${counts.failed - logged} event(s) ${dryRun ? "would fail to apply" : "could not be applied"} beyond the ${logged} logged one by one`);
    opts.log?.info({ target: target.name, read, ...counts, full, dryRun }, "replay finished");
    return { read, ...counts, reset: full && !dryRun, dryRun, ms: Date.now() - started, lost };
  } finally {
    // Ordered consumers are ephemeral; delete them now instead of waiting for their inactivity timeout.
    await Promise.all(consumers.map((c) => c.consumer.delete().catch(() => false)));
  }
}
