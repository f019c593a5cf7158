import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AckPolicy, jetstream, type JsMsg } from "@nats-io/jetstream";
import { openTestNamespace, type TestNamespace } from "../testing/index.js";
import { ensureDurableConsumer, ensureStreams } from "../nats/streams.js";
import { oldestUnacked, oldestUnackedAgeSeconds } from "./oldest-unacked.js";

let t: TestNamespace;
beforeAll(async () => void (t = await openTestNamespace()));
afterAll(() => t?.dispose());

const fetchAcking = async (stream: string, durable: string, n: number, ack: (m: JsMsg, i: number) => boolean) => {
  const delivered: JsMsg[] = [];
  for await (const m of await jetstream(t.nc).consumers.get(stream, durable).then((c) => c.fetch({ max_messages: n, expires: 2000 }))) {
    delivered.push(m);
    if (ack(m, delivered.length - 1)) await m.ackAck();
    if (delivered.length === n) break;
  }
  return delivered;
};

describe("oldestUnacked", () => {
  it("is the first message of the consumer's subject past its ack floor, none once it has acked everything", async () => {
    const stream = t.names.stream("USERS");
    await ensureStreams(t.jsm, t.names, ["USERS"], { replicas: 1, maxAgeMs: 3600_000 });
    await ensureDurableConsumer(t.jsm, t.names, { stream: "USERS", durable: "ages", filterSubject: "users.registered" });
    const durable = t.names.durable("ages");
    const js = jetstream(t.nc);
    const [mine, other] = [t.names.subject("users.registered"), t.names.subject("users.other")];
    // seq 2 and 4–6 are the consumer's; 1 and 3 are another subject of the same stream.
    for (const subject of [other, mine, other, mine, mine, mine]) await js.publish(subject, "{}");
    const oldest = async () => (await oldestUnacked(t.jsm, await t.jsm.consumers.info(stream, durable)))?.seq ?? null;

    // Nothing delivered yet: the consumer's first message, not the stream's.
    expect(await oldest()).toBe(2);
    // 2, 4, 5 delivered; 2 and 5 acked, 4 not: 4 (not the other subject's 3) is the oldest.
    const delivered = await fetchAcking(stream, durable, 3, (_, i) => i !== 1);
    expect(delivered.map((m) => m.seq)).toEqual([2, 4, 5]);
    expect(await oldest()).toBe(4);
    // 4 acked: the floor passes 5, and 6, not delivered yet, is the oldest.
    await delivered[1]!.ackAck();
    expect(await oldest()).toBe(6);
    await fetchAcking(stream, durable, 1, () => true);
    expect(await oldest()).toBe(null);
    // Published after the floor settled (at 6): 7 is the other subject's, 8 the consumer's.
    await js.publish(other, "{}");
    await js.publish(mine, "{}");
    expect(await oldest()).toBe(8);

    // Its age, in seconds from its stored time; 0 with nothing unacked.
    const info = await t.jsm.consumers.info(stream, durable);
    const stored = (await t.jsm.streams.getMessage(stream, { seq: 8 }))!.time.getTime();
    expect(await oldestUnackedAgeSeconds(t.jsm, info, stored + 2500)).toBe(2.5);
    await fetchAcking(stream, durable, 1, () => true);
    expect(await oldestUnackedAgeSeconds(t.jsm, await t.jsm.consumers.info(stream, durable))).toBe(0);
  });

  it("takes the oldest of a consumer of several subjects (filter_subjects, nats-server 2.10+)", async (ctx) => {
    const [major, minor] = t.nc.info!.version.split(".").map(Number) as [number, number];
    if (major === 2 && minor < 10) return ctx.skip();
    const stream = t.names.stream("ORDERS");
    await ensureStreams(t.jsm, t.names, ["ORDERS"], { replicas: 1, maxAgeMs: 3600_000 });
    const [a, b] = [t.names.subject("orders.a"), t.names.subject("orders.b")];
    await t.jsm.consumers.add(stream, { durable_name: "several", ack_policy: AckPolicy.Explicit, filter_subjects: [a, b] });
    const js = jetstream(t.nc);
    await js.publish(b, "{}");
    await fetchAcking(stream, "several", 1, () => true);
    // The floor is at 1; then another subject's message, the second filter's, the first filter's.
    for (const subject of [t.names.subject("orders.other"), b, a]) await js.publish(subject, "{}");
    // 3, the second filter's: not 4 (the first filter's) nor 2 (no filter's).
    expect((await oldestUnacked(t.jsm, await t.jsm.consumers.info(stream, "several")))?.seq).toBe(3);
  });
});
