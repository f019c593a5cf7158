import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { StreamName } from "../events/catalog.js";
import { abortableDelay, backoffMs } from "../lifecycle/delay.js";
import type { Names } from "../nats/names.js";
import { isStreamNotFound } from "../nats/streams.js";

export interface PullLoopOptions {
  /** The connection `js` uses: its disconnects may mean a broker that lost its store (see Settle). */
  nc: NatsConnection;
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
  /**
   * Handles one consume iterator until it ends; must end promptly once `signal` aborts. Its
   * messages are acked, nak'ed, termed and kept alive through the loop's `settle`.
   */
  drain(messages: Deliveries, signal: AbortSignal): Promise<void>;
}

/** The time the stream stored a message (ms), or -1 if its reply subject does not say. */
export function storedAt(msg: JsMsg): number {
  try {
    return msg.time.getTime();
  } catch {
    return -1;
  }
}

/**
 * Seconds from the stream storing `msg` to `now` (ms), undefined if its reply subject does not
 * say when. The broker's clock against ours: a skew of a few ms shows as 0, never as a negative age.
 */
export function eventLatencySeconds(msg: JsMsg, now: number): number | undefined {
  const at = storedAt(msg);
  return at >= 0 ? Math.max(0, now - at) / 1000 : undefined;
}

/** A consume iterator as `drain` gets it: its messages, and a way to stop pulling. */
export interface Deliveries extends AsyncIterable<JsMsg> {
  stop(): void;
}

/**
 * Acks, naks, terms and `working()` for the messages a pull loop delivered, sent only while they
 * cannot reach another message. An ack names the stream, the durable and the stream sequence,
 * nothing more: once a stream is deleted and created again (by hand, or by the services after
 * the broker lost its store), the same names and sequences belong to new messages, and the ack
 * of an old message still in hand removed a new one from another replica's pending list. That
 * replica failing or dying in its handler then left the new event in the stream unapplied, never
 * redelivered. So a message received before the loop heard of a lost connection or a vanished
 * consumer or stream is settled only if the stream now there stored it (its stored time is not
 * before the stream's creation); otherwise, or when that cannot be told, it is left to ack_wait:
 * if its stream is the same after all, it is redelivered and the inbox takes it as a duplicate.
 * None of them throws. Not covered: a stream deleted by hand while this loop has no pull
 * outstanding (its pump held back) sends it no status; a lost store always comes as a disconnect.
 */
export interface Settle {
  ack(msg: JsMsg): void;
  nak(msg: JsMsg, delayMs?: number): void;
  term(msg: JsMsg): void;
  working(msg: JsMsg): void;
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
export function createPullLoop(o: PullLoopOptions): PullLoop & { settle: Settle } {
  const abort = new AbortController();
  let messages: ConsumerMessages | undefined;
  let loop: Promise<void> | undefined;

  // Settle: which "generation" each message was received in; a new one starts with every
  // disconnect and every vanished consumer or stream. A message is stamped as it comes out of
  // the consume iterator, but nats.js may have received it long before (its buffer holds a pull's
  // worth while drain is busy): at each new generation the live iterator's count of messages
  // received so far is marked, and messages up to that count keep the generation before.
  let generation = 0;
  const receivedIn = new WeakMap<JsMsg, number>();
  let live: { current: ConsumerMessages; marks: { upTo: number; generation: number }[] } | undefined;
  let streamCreated: Promise<number | undefined> | undefined;
  const newGeneration = () => {
    live?.marks.push({ upTo: live.current.getReceived(), generation });
    generation++;
    streamCreated = undefined;
  };
  /**
   * When the stream now there was created (ms); undefined when there is none (what was received
   * before belongs to a stream that is gone). Asked until it answers: a request made while the
   * connection is down fails, and a failure is not an answer. Undefined once the loop stops.
   */
  const createdNow = () =>
    (streamCreated ??= (async () => {
      while (!abort.signal.aborted) {
        try {
          const info = await (await o.js.streams.get(o.names.stream(o.stream))).info(true);
          return Date.parse(info.created);
        } catch (err) {
          if (isStreamNotFound(err)) return undefined;
          await abortableDelay(500, abort.signal).catch(() => {});
        }
      }
      return undefined;
    })());
  let warnedIn = -1;
  const unsettled = () => {
    if (warnedIn === generation) return;
    warnedIn = generation;
    o.log.warn({ durable: o.durable }, "leaving messages received before a lost connection or a vanished stream to ack_wait: the stream may be a new one");
  };
  // Never throws: an ack or nak on a closed connection throws, and the server redelivers after
  // ack_wait all the same (the inbox takes a redelivered event as a duplicate). Thrown, it made
  // a committed event look like a failed one, or, from a keep-alive timer, ended the process.
  const trySend = (send: () => void) => {
    try {
      send();
    } catch {
      // not sent; see above
    }
  };
  const settleWith = (msg: JsMsg, send: () => void): void => {
    if (receivedIn.get(msg) === generation) return trySend(send);
    const asked = generation;
    void createdNow().then((created) => {
      // The answer is about the stream of the generation it was asked in.
      if (generation !== asked) return settleWith(msg, send);
      // The stream's server stamped both; an old message's time is before the new stream's creation.
      if (created !== undefined && storedAt(msg) >= created) trySend(send);
      else unsettled();
    });
  };
  const settle: Settle = {
    ack: (msg) => settleWith(msg, () => msg.ack()),
    nak: (msg, delayMs) => settleWith(msg, () => msg.nak(delayMs)),
    term: (msg) => settleWith(msg, () => msg.term()),
    working: (msg) => settleWith(msg, () => msg.working()),
  };
  // nats.js hands out a queued iterator whose stop() ends it; the type shows only the iterable.
  const connection = o.nc.status() as ReturnType<NatsConnection["status"]> & { stop?: () => void };
  void (async () => {
    for await (const s of connection) if (s.type === "disconnect") newGeneration();
  })().catch(() => {});

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
        try {
          await o.drain(stamped(current), abort.signal);
        } finally {
          // A drain that threw left its consume pulling into a buffer nobody reads, its
          // messages waiting out ack_wait, beside the one the next turn starts.
          current.stop();
        }
      } catch (err) {
        if (abort.signal.aborted) break;
        failures += 1;
        o.log.warn({ err: (err as Error).message, durable: o.durable, failures }, "consume loop failed; recreating");
        await o.ensure().catch(() => {});
      }
      if (!abort.signal.aborted) await abortableDelay(backoffMs(failures, 200), abort.signal).catch(() => {});
    }
  }

  /** The consume iterator's messages, each marked with the generation it arrived in (see Settle). */
  function stamped(current: ConsumerMessages): Deliveries {
    const state = { current, marks: [] as { upTo: number; generation: number }[] };
    live = state;
    return {
      stop: () => current.stop(),
      async *[Symbol.asyncIterator]() {
        // The n-th message out is the n-th nats.js received (getReceived counts them in order).
        let n = 0;
        for await (const msg of current) {
          n++;
          while (state.marks.length > 0 && state.marks[0]!.upTo < n) state.marks.shift();
          receivedIn.set(msg, state.marks[0]?.generation ?? generation);
          yield msg;
        }
      },
    };
  }

  async function watchStatus(current: ConsumerMessages) {
    for await (const s of current.status()) {
      const vanished = s.type === "consumer_not_found" || s.type === "consumer_deleted" || s.type === "stream_not_found";
      if (vanished) newGeneration();
      if (vanished || (s.type === "heartbeats_missed" && s.count >= 3)) {
        o.log.warn({ durable: o.durable, status: s.type }, "consumer stalled; recreating");
        if (vanished) await o.ensure().catch(() => {});
        current.stop();
        return;
      }
    }
  }

  return {
    settle,
    async start() {
      await o.ensure();
      loop ??= run();
    },
    async stop() {
      abort.abort();
      messages?.stop();
      await loop;
      connection.stop?.();
    },
  };
}
