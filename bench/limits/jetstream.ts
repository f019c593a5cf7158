import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connectTestNats, deleteNamespace, testNatsUrl, uniqueNamespace } from "@orderflow/shared/testing";
import { uuidv7 } from "@orderflow/shared";
import { registeredEventPayload } from "../payload.js";
import { machineBusySeconds } from "../cpu.js";

export interface JetStreamLimit {
  publishPerSec: number;
  consumeAckPerSec: number;
  /** The whole machine's CPU (nats-server, this client, anything else) per consumed and acked message. */
  consumeAckCpuUs: number;
  messages: number;
  payloadBytes: number;
  window: number;
}

/**
 * Publishes users.registered-sized messages with a Nats-Msg-Id into a file stream, keeping at
 * most `window` publishes in flight (each awaited for its ack), then drains them through a
 * durable pull consumer acking every message.
 */
export async function measureJetStream({ seconds, window = 256, natsUrl = testNatsUrl() }: { seconds: number; window?: number; natsUrl?: string }): Promise<JetStreamLimit> {
  const nc = await connectTestNats(natsUrl);
  const namespace = uniqueNamespace();
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const stream = `${namespace}_BENCH`;
    const subject = `${namespace}.bench.users.registered`;
    await jsm.streams.add({ name: stream, subjects: [`${namespace}.bench.>`], storage: StorageType.File, retention: RetentionPolicy.Limits });
    const run = namespace;
    const payload = new TextEncoder().encode(registeredEventPayload(0, run));

    let published = 0;
    const deadline = Date.now() + seconds * 1000;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (Date.now() < deadline) {
          await js.publish(subject, payload, { msgID: uuidv7() });
          published += 1;
        }
      }),
    );
    const publishPerSec = published / ((performance.now() - started) / 1000);

    await jsm.consumers.add(stream, { durable_name: "bench", ack_policy: AckPolicy.Explicit, max_ack_pending: 10_000 });
    const consumer = await js.consumers.get(stream, "bench");
    const t0 = performance.now();
    const busy0 = machineBusySeconds();
    const messages = await consumer.consume({ max_messages: 1024 });
    let consumed = 0;
    for await (const m of messages) {
      m.ack();
      consumed += 1;
      if (consumed >= published) break;
    }
    await nc.flush(); // the last acks have reached the server
    const consumeAckPerSec = consumed / ((performance.now() - t0) / 1000);
    const consumeAckCpuUs = ((machineBusySeconds() - busy0) * 1e6) / consumed;
    await messages.close().catch(() => {});
    return { publishPerSec, consumeAckPerSec, consumeAckCpuUs, messages: published, payloadBytes: payload.byteLength, window };
  } finally {
    await deleteNamespace(nc, namespace).catch(() => {});
    await nc.close();
  }
}
