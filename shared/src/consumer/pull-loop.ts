import type { ConsumerMessages, JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { StreamName } from "../events/catalog.js";
import { abortableDelay, backoffMs } from "../lifecycle/delay.js";
import type { Names } from "../nats/names.js";

export interface PullLoopOptions {
  js: JetStreamClient;
  names: Names;
  log: Logger;
  stream: StreamName;
  /** Durable name before the namespace prefix. */
  durable: string;
  /** Creates or updates the durable: at start, and again when it has vanished. */
  ensure(): Promise<void>;
  /** Messages the client may hold (pull buffer). */
  maxMessages: number;
  /**
   * Bytes the client may hold pulled and not yet handled, instead of `maxMessages` (nats.js takes
   * one or the other; with bytes it asks for at most 100 messages at a time). For consumers that
   * keep raw messages whatever their size: 400 messages near the 1 MiB limit are 400 MiB.
   */
  maxBytes?: number;
  /** Awaited before each consume loop starts (the runner waits there for its database). */
  beforeConsume?(signal: AbortSignal): Promise<void>;
  /** Handles one consume iterator until it ends; must end promptly once `signal` aborts. */
  drain(messages: ConsumerMessages, signal: AbortSignal): Promise<void>;
}

export interface PullLoop {
  start(): Promise<void>;
  /** Stops pulling and waits for `drain` to return. */
  stop(): Promise<void>;
}

/**
 * Keeps a durable pull consumer's consume loop alive: re-creates it with capped backoff when it
 * fails, and when it stalls silently (heartbeats stop after a server restart, or the consumer or
 * stream vanished — then it is ensured again first). The consumer runner and the event log's
 * ingesters differ only in `drain`.
 */
export function createPullLoop(o: PullLoopOptions): PullLoop {
  const abort = new AbortController();
  let messages: ConsumerMessages | undefined;
  let loop: Promise<void> | undefined;

  async function run() {
    let failures = 0;
    while (!abort.signal.aborted) {
      try {
        await o.beforeConsume?.(abort.signal);
        if (abort.signal.aborted) break;
        const consumer = await o.js.consumers.get(o.names.stream(o.stream), o.names.durable(o.durable));
        const limit = o.maxBytes ? { max_bytes: o.maxBytes } : { max_messages: o.maxMessages };
        const current = await consumer.consume({ ...limit, expires: 30_000, idle_heartbeat: 10_000 });
        messages = current;
        // stop() may have run while consume() was being set up, before `messages` existed.
        if (abort.signal.aborted) {
          current.stop();
          break;
        }
        failures = 0;
        void watchStatus(current);
        await o.drain(current, abort.signal);
      } catch (err) {
        if (abort.signal.aborted) break;
        failures += 1;
        o.log.warn({ err: (err as Error).message, durable: o.durable, failures }, "consume loop failed; recreating");
        await o.ensure().catch(() => {});
      }
      if (!abort.signal.aborted) await abortableDelay(backoffMs(failures, 200), abort.signal).catch(() => {});
    }
  }

  async function watchStatus(current: ConsumerMessages) {
    for await (const s of current.status()) {
      const vanished = s.type === "consumer_not_found" || s.type === "consumer_deleted" || s.type === "stream_not_found";
      if (vanished || (s.type === "heartbeats_missed" && s.count >= 3)) {
        o.log.warn({ durable: o.durable, status: s.type }, "consumer stalled; recreating");
        if (vanished) await o.ensure().catch(() => {});
        current.stop();
        return;
      }
    }
  }

  return {
    async start() {
      await o.ensure();
      loop ??= run();
    },
    async stop() {
      abort.abort();
      messages?.stop();
      await loop;
    },
  };
}
