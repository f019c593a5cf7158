import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import { abortableDelay, ensureDurableConsumer, streamCatalog, type Logger, type Names, type StreamName } from "@orderflow/shared";
import { toEventRow } from "./ingest.domain.js";
import type { EventWriter } from "./ingest.store.js";

export interface IngestOptions {
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
}

export interface IngestConsumer {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly running: boolean;
}

/** The durable name of the log's consumer on a stream, before the namespace prefix. */
export const ingestDurable = (stream: StreamName) => `event-log-${stream.toLowerCase()}`;

const headersOf = (msg: JsMsg): Record<string, string> => {
  const out: Record<string, string> = {};
  if (msg.headers) for (const [k, v] of msg.headers) out[k] = v.join(", ");
  return out;
};

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
  const abort = new AbortController();
  let messages: ConsumerMessages | undefined;
  let loop: Promise<void> | undefined;
  let running = false;

  const ensure = () =>
    ensureDurableConsumer(o.jsm, names, {
      stream,
      durable,
      filterSubject: streamCatalog[stream].subjects[0]!,
      maxDeliver: -1,
      ackWaitMs: 30_000,
      maxAckPending: batchSize * 5,
    });

  let buffer: JsMsg[] = [];
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();

  async function store(batch: JsMsg[]) {
    const rows = batch.map((msg) =>
      toEventRow({ stream, streamSeq: msg.seq, streamTime: msg.time, subject: names.logicalSubject(msg.subject), data: msg.data, headers: headersOf(msg) }),
    );
    try {
      await writer.write(rows);
      for (const msg of batch) msg.ack();
    } catch (err) {
      log.warn({ stream, count: batch.length, err: (err as Error).message, retryInMs: retryDelayMs }, "storing events failed; retrying");
      for (const msg of batch) msg.nak(retryDelayMs);
    }
  }

  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    if (buffer.length === 0) return flushing;
    const batch = buffer;
    buffer = [];
    flushing = flushing.then(() => store(batch));
    return flushing;
  }

  async function run() {
    let failures = 0;
    while (!abort.signal.aborted) {
      try {
        const consumer = await js.consumers.get(names.stream(stream), names.durable(durable));
        messages = await consumer.consume({ max_messages: batchSize * 2, expires: 30_000, idle_heartbeat: 10_000 });
        running = true;
        failures = 0;
        void watchStatus(messages);
        for await (const msg of messages) {
          if (abort.signal.aborted) {
            msg.nak();
            continue;
          }
          buffer.push(msg);
          // A full batch is written before reading on; a partial one after a short linger.
          if (buffer.length >= batchSize) await flush();
          else timer ??= setTimeout(() => void flush(), lingerMs);
        }
        await flush();
      } catch (err) {
        if (abort.signal.aborted) break;
        failures += 1;
        log.warn({ err: (err as Error).message, durable, failures }, "event log consume loop failed; recreating");
        await ensure().catch(() => {});
      } finally {
        running = false;
      }
      if (!abort.signal.aborted) await abortableDelay(Math.min(5000, 200 * 2 ** Math.min(failures, 5)), abort.signal).catch(() => {});
    }
    await flush();
  }

  async function watchStatus(current: ConsumerMessages) {
    for await (const s of current.status()) {
      if ((s.type === "heartbeats_missed" && s.count >= 3) || s.type === "consumer_not_found" || s.type === "consumer_deleted" || s.type === "stream_not_found") {
        log.warn({ durable, status: s.type }, "event log consumer stalled; recreating");
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
