import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import { streamCatalog, type StreamName } from "../events/catalog.js";
import type { Logger } from "pino";
import type { Names } from "./names.js";

export interface StreamSettings {
  replicas: number;
  /** The event streams' max_age (0: no limit). */
  maxAgeMs: number;
  /** The DLQ's, when it differs: dead letters wait for an operator, not for history's limit. */
  deadLetterMaxAgeMs?: number;
  /** Messages with the same Nats-Msg-Id inside this window are stored once. */
  duplicateWindowMs?: number;
  /**
   * Told of a stream with fewer copies than `replicas` asks for. A single nats-server 2.9 or
   * 2.10 takes an update to more replicas and reports them in the config while it keeps one copy: an
   * operator who set STREAM_REPLICAS would think the events replicated.
   */
  onUnderReplicated?: (stream: string, asked: number, copies: number) => void;
}

/** Copies of a stream: its leader (or the one server) and the replicas its cluster lists. */
const copiesOf = (info: StreamInfo) => 1 + (info.cluster?.replicas?.length ?? 0);

/**
 * Creates or updates the streams a service touches. Limits retention keeps history for replay
 * and queries (consumers do not delete messages). Idempotent: every replica calls it at start.
 * Returns the streams it had to create.
 */
export async function ensureStreams(
  jsm: JetStreamManager,
  names: Names,
  streams: readonly StreamName[],
  settings: StreamSettings,
): Promise<StreamName[]> {
  const created: StreamName[] = [];
  for (const logical of streams) {
    const config: Partial<StreamConfig> & { name: string } = {
      name: names.stream(logical),
      subjects: streamCatalog[logical].subjects.map((s) => names.subject(s)),
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: settings.replicas,
      max_age: nanos(logical === "DLQ" ? (settings.deadLetterMaxAgeMs ?? settings.maxAgeMs) : settings.maxAgeMs),
      duplicate_window: nanos(settings.duplicateWindowMs ?? 120_000),
      description: streamCatalog[logical].description,
    };
    let info: StreamInfo | undefined;
    try {
      await jsm.streams.info(config.name);
      info = await jsm.streams.update(config.name, config);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        info = await jsm.streams.add(config);
        created.push(logical);
      } catch (addErr) {
        // Another replica created it between our info and add: that is the state we wanted.
        if (!String((addErr as Error).message).includes("already in use")) throw addErr;
      }
    }
    if (info && copiesOf(info) < settings.replicas) settings.onUnderReplicated?.(config.name, settings.replicas, copiesOf(info));
  }
  return created;
}

export interface DurableSettings {
  stream: StreamName;
  durable: string;
  filterSubject: string;
  /**
   * Server-side delivery limit; -1 (the default) for none. orderflow's consumer runner keeps
   * its own budget and dead-letters on it, because a message the server stops delivering at
   * max_deliver vanishes without a trace (only an advisory is emitted).
   */
  maxDeliver?: number;
  ackWaitMs?: number;
  maxAckPending?: number;
  /**
   * Re-creates the service's streams when this consumer's is gone (a JetStream store lost, a
   * stream deleted): without it the consumer could only fail "stream not found" for ever.
   */
  restoreStreams?: () => Promise<void>;
}

/**
 * Creates or updates a durable pull consumer with explicit acks. No `backoff`: on the server it
 * replaces ack_wait for every delivery, so messages merely waiting in a client's pull buffer
 * behind a slow handler would be redelivered on that short schedule; retry delays are applied
 * by the runner with nak(delay) instead.
 */
export async function ensureDurableConsumer(jsm: JetStreamManager, names: Names, s: DurableSettings): Promise<void> {
  const stream = names.stream(s.stream);
  const config: Partial<ConsumerConfig> = {
    durable_name: names.durable(s.durable),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: names.subject(s.filterSubject),
    max_deliver: s.maxDeliver ?? -1,
    ack_wait: nanos(s.ackWaitMs ?? 30_000),
    max_ack_pending: s.maxAckPending ?? 1000,
    // Clears a backoff left by an earlier version (update merges into the existing config).
    backoff: undefined,
  };
  const upsert = async () => {
    try {
      await jsm.consumers.info(stream, config.durable_name!);
      await jsm.consumers.update(stream, config.durable_name!, config);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.consumers.add(stream, config);
    }
  };
  try {
    await upsert();
  } catch (err) {
    if (!s.restoreStreams || !isStreamNotFound(err)) throw err;
    await s.restoreStreams();
    await upsert();
  }
}

/** JetStream's "stream not found" (err_code 10059), as opposed to a missing consumer or message. */
export function isStreamNotFound(err: unknown): boolean {
  if (err instanceof JetStreamApiError && err.code === 10059) return true;
  return /stream not found/i.test(String((err as Error)?.message));
}

/**
 * Single-flight, rate-limited `ensureStreams` for a running service: whatever finds a stream gone
 * (a consumer's "stream not found", the relay's publish that no stream takes) calls it, and the
 * streams are created again at most once per `minIntervalMs`, however many callers found out.
 */
export function streamRestorer(ensure: () => Promise<StreamName[]>, log: Logger, minIntervalMs = 2000): () => Promise<void> {
  let running: Promise<void> | undefined;
  let last = 0;
  return () => {
    if (running) return running;
    if (Date.now() - last < minIntervalMs) return Promise.resolve();
    last = Date.now();
    // Only a stream actually created is news: a "no responders" during a leader election finds
    // every stream in place, and then this was one info per stream, said nowhere.
    running = ensure()
      .then((created) => void (created.length > 0 && log.warn({ streams: created }, "a stream was missing (JetStream store lost, or deleted): streams recreated")))
      .finally(() => (running = undefined));
    return running;
  };
}

/** JetStream says a stream, consumer or message does not exist (a message: "no message found"). */
export function isNotFound(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.status === 404 || /not found|no message found/i.test(err.message);
  return /not found|no message found/i.test(String((err as Error)?.message));
}
