import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectTestNats, deleteNamespace, uniqueNamespace } from "../testing/index.js";
import { createNames } from "../nats/names.js";
import { ensureDurableConsumer, ensureStreams } from "../nats/streams.js";
import { oldestUnackedAgeSeconds } from "./oldest-unacked.js";

const names = createNames(uniqueNamespace());
let nc: NatsConnection;
let jsm: JetStreamManager;
beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  await deleteNamespace(nc, names.namespace);
  await nc.close();
});

describe("oldestUnackedAgeSeconds", () => {
  it("is the age of the first message of the consumer's subject past its ack floor, 0 once it has acked everything", async () => {
    const stream = names.stream("USERS");
    await ensureStreams(jsm, names, ["USERS"], { replicas: 1, maxAgeMs: 3600_000 });
    await ensureDurableConsumer(jsm, names, { stream: "USERS", durable: "ages", filterSubject: "users.registered" });
    const js = jetstream(nc);
    const mine = names.subject("users.registered");
    // seq 2 and 4–6 are the consumer's; 1 and 3 are another subject of the same stream.
    const other = names.subject("users.other");
    for (const subject of [other, mine, other, mine, mine, mine]) await js.publish(subject, "{}");
    const stored = async (seq: number) => (await jsm.streams.getMessage(stream, { seq }))!.time.getTime();
    const age = async () => {
      const info = await jsm.consumers.info(stream, names.durable("ages"));
      const now = Date.now();
      return { now, age: await oldestUnackedAgeSeconds(jsm, info, now) };
    };

    // Nothing delivered yet: the oldest is the consumer's first message, not the stream's.
    let { now, age: seconds } = await age();
    expect(seconds).toBe((now - (await stored(2))) / 1000);

    const consumer = await jetstream(nc).consumers.get(stream, names.durable("ages"));
    const delivered: JsMsg[] = [];
    for await (const m of await consumer.fetch({ max_messages: 3, expires: 2000 })) {
      delivered.push(m);
      if (delivered.length === 3) break;
    }
    expect(delivered.map((m) => m.seq)).toEqual([2, 4, 5]);
    // 2 and 5 acked, 4 not: 4 (not the other subject's 3) is the oldest.
    await delivered[0]!.ackAck();
    await delivered[2]!.ackAck();
    ({ now, age: seconds } = await age());
    expect(seconds).toBe((now - (await stored(4))) / 1000);

    // 4 acked: the floor passes 5, and 6, not delivered yet, is the oldest.
    await delivered[1]!.ackAck();
    ({ now, age: seconds } = await age());
    expect(seconds).toBe((now - (await stored(6))) / 1000);

    for await (const m of await consumer.fetch({ max_messages: 1, expires: 2000 })) {
      await m.ackAck();
      break;
    }
    expect((await age()).age).toBe(0);

    // Published after the floor settled: the floor is at 6, and 7 is the other subject's.
    await js.publish(other, "{}");
    await js.publish(mine, "{}");
    ({ now, age: seconds } = await age());
    expect(seconds).toBe((now - (await stored(8))) / 1000);
  });
});
