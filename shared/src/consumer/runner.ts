import type { JetStreamClient, JetStreamManager, JsMsg, ConsumerMessages } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { Db, Tx } from "../db/database.js";
import { inbox } from "../db/tables.js";
import { PermanentError, UnknownEventTypeError } from "../errors/index.js";
import type { CloudEvent } from "../events/envelope.js";
import type { EventData, EventName, StreamName } from "../events/catalog.js";
import { decodeEvent } from "../events/decode.js";
import { abortableDelay } from "../nats/connect.js";
import type { Names } from "../nats/names.js";
import { ensureDurableConsumer } from "../nats/streams.js";
import { publishDeadLetter } from "./dead-letter.js";

export type EventHandlers = {
  [N in EventName]?: (tx: Tx, event: CloudEvent<EventData<N>>) => Promise<void>;
};

export interface RetryPolicy {
  /** nak delay after the 1st, 2nd, … failed delivery; the last value repeats. */
  delaysMs: number[];
  /** Deliveries before a transiently failing message is dead-lettered. */
  maxDeliver: number;
}

export interface ConsumerOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  db: Db;
  names: Names;
  log: Logger;
  stream: StreamName;
  /** Durable name before the namespace prefix; also the inbox's consumer key. */
  durable: string;
  filterSubject: string;
  handlers: EventHandlers;
  retry: RetryPolicy;
  ackWaitMs?: number;
  /** Recorded in the inbox as `processed_by`. */
  instance?: string;
  /** Called after a transaction that applied an event commits (e.g. to wake the outbox relay). */
  onApplied?: () => void;
}

export interface Consumer {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly running: boolean;
}

type Outcome = "applied" | "duplicate" | "retry" | "dead-lettered";

/**
 * Runs a durable pull consumer. Per message: decode and validate, then in one transaction
 * insert the inbox row and apply the handler, commit, and only then ack. Permanent failures
 * go to the DLQ at once; transient ones are nak'ed with growing delays and dead-lettered on
 * the last delivery, so nothing reaches max_deliver silently.
 */
export function createConsumer(opts: ConsumerOptions): Consumer {
  const { js, db, names, log, durable, retry } = opts;
  const ackWaitMs = opts.ackWaitMs ?? 30_000;
  const abort = new AbortController();
  let messages: ConsumerMessages | undefined;
  let loop: Promise<void> | undefined;
  let running = false;

  const ensure = () =>
    ensureDurableConsumer(opts.jsm, names, {
      stream: opts.stream,
      durable,
      filterSubject: opts.filterSubject,
      maxDeliver: retry.maxDeliver,
      backoffMs: retry.delaysMs,
      ackWaitMs,
    });

  async function deadLetter(msg: JsMsg, error: Error, eventId: string | undefined): Promise<Outcome> {
    const fields = { eventId, subject: msg.subject, deliveries: msg.info.deliveryCount, err: error.message, errorClass: error.name };
    try {
      await publishDeadLetter(js, names, msg, { consumer: durable, error });
    } catch (pubErr) {
      // The DLQ is unreachable: keep the message in its stream and try again later.
      log.warn({ ...fields, dlqError: (pubErr as Error).message }, "dead-letter publish failed; will retry");
      msg.nak(retry.delaysMs[0] ?? 1000);
      return "retry";
    }
    msg.term();
    log.error(fields, "event dead-lettered");
    return "dead-lettered";
  }

  async function handle(msg: JsMsg): Promise<Outcome> {
    const headerId = msg.headers?.get("Nats-Msg-Id") || undefined;
    const deliveries = msg.info.deliveryCount;
    if (deliveries > 1) log.info({ eventId: headerId, subject: msg.subject, deliveries }, "redelivery");
    let decoded;
    try {
      decoded = decodeEvent(msg.data);
    } catch (err) {
      return deadLetter(msg, err as Error, headerId);
    }
    const handler = opts.handlers[decoded.name] as ((tx: Tx, e: CloudEvent) => Promise<void>) | undefined;
    if (!handler) {
      return deadLetter(msg, new UnknownEventTypeError(`${durable} has no handler for ${decoded.event.type}`), decoded.event.id);
    }
    const event = decoded.event as CloudEvent;
    // Tell the server we are still alive when a handler runs long, instead of being redelivered.
    const keepAlive = setInterval(() => msg.working(), Math.max(1000, ackWaitMs / 3));
    try {
      const applied = await db.transaction(async (tx) => {
        const fresh = await tx
          .insert(inbox)
          .values({ consumer: durable, eventId: event.id, subject: decoded.name, streamSeq: msg.seq, processedBy: opts.instance ?? null })
          .onConflictDoNothing()
          .returning({ eventId: inbox.eventId });
        if (fresh.length === 0) return false;
        await handler(tx, event);
        return true;
      });
      msg.ack();
      if (applied) opts.onApplied?.();
      return applied ? "applied" : "duplicate";
    } catch (err) {
      const error = err as Error;
      if (error instanceof PermanentError || deliveries >= retry.maxDeliver) return deadLetter(msg, error, event.id);
      const delay = retry.delaysMs[Math.min(deliveries - 1, retry.delaysMs.length - 1)] ?? 1000;
      log.warn({ eventId: event.id, subject: msg.subject, deliveries, err: error.message, retryInMs: delay }, "event failed; retrying");
      msg.nak(delay);
      return "retry";
    } finally {
      clearInterval(keepAlive);
    }
  }

  async function run() {
    let failures = 0;
    while (!abort.signal.aborted) {
      try {
        const consumer = await js.consumers.get(names.stream(opts.stream), names.durable(durable));
        messages = await consumer.consume({ max_messages: 128, expires: 30_000, idle_heartbeat: 10_000 });
        running = true;
        failures = 0;
        const current = messages;
        void watchStatus(current);
        for await (const msg of current) {
          if (abort.signal.aborted) {
            msg.nak(); // hand it straight back rather than waiting out ack_wait
            break;
          }
          await handle(msg);
        }
      } catch (err) {
        if (abort.signal.aborted) break;
        failures += 1;
        log.warn({ err: (err as Error).message, durable, failures }, "consume loop failed; recreating");
        await ensure().catch(() => {});
      } finally {
        running = false;
      }
      if (!abort.signal.aborted) await abortableDelay(Math.min(5000, 200 * 2 ** Math.min(failures, 5)), abort.signal).catch(() => {});
    }
  }

  // A pull consumer can stall silently (server restarted, consumer recreated): when heartbeats
  // stop or the consumer vanishes, end this iterator so `run` re-creates the consume loop.
  async function watchStatus(current: ConsumerMessages) {
    for await (const s of current.status()) {
      if ((s.type === "heartbeats_missed" && s.count >= 3) || s.type === "consumer_not_found" || s.type === "consumer_deleted" || s.type === "stream_not_found") {
        log.warn({ durable, status: s.type }, "consumer stalled; recreating");
        if (s.type !== "heartbeats_missed") await ensure().catch(() => {});
        current.stop();
        return;
      }
    }
  }

  return {
    async start() {
      await ensure();
      loop ??= run();
    },
    async stop() {
      abort.abort();
      messages?.stop();
      await loop;
    },
    get running() {
      return running;
    },
  };
}
