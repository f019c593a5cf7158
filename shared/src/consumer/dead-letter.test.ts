import { afterAll, beforeAll, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { createNames } from "../nats/names.js";
import { ensureStreams } from "../nats/streams.js";
import { connectTestNats, deleteNamespace, teardown, uniqueNamespace } from "../testing/index.js";
import { publishDeadLetter } from "./dead-letter.js";

const names = createNames(uniqueNamespace());
let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectTestNats();
  await ensureStreams(await jetstreamManager(nc), names, ["USERS", "DLQ"], { replicas: 1, maxAgeMs: 3600_000 });
});
// Both steps, whatever the other did; a namespace left on the shared server fails the run.
afterAll(() =>
  teardown(
    () => nc && deleteNamespace(nc, names.namespace),
    () => nc?.close(),
  ),
);

it("keeps one dead letter per consumer that gives up on a message, and one only per consumer however often it tries", async () => {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  await js.publish(names.subject("users.registered"), "{}");
  await jsm.consumers.add(names.stream("USERS"), { durable_name: "raw", ack_policy: "explicit" as never });
  const msg = (await (await js.consumers.get(names.stream("USERS"), "raw")).next({ expires: 5000 }))!;
  const error = new Error("gave up");
  // Two consumers of one stream, the first of them twice (a retried dead-letter publish).
  for (const consumer of ["order-service", "order-service", "audit"]) await publishDeadLetter(js, names, msg, { consumer, error });
  const dlq = await jsm.streams.info(names.stream("DLQ"));
  expect(dlq.state.messages).toBe(2);
  msg.ack();
});

it("stores the letter of a message at a position an earlier letter's message had, in a stream deleted and created again since", async () => {
  // Both within the DLQ's duplicate window: an id made of the stream and position alone was
  // taken for the first letter's, and the second message was termed with no letter stored.
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const error = new Error("gave up");
  const letterOf = async (payload: string) => {
    await js.publish(names.subject("users.registered"), payload);
    await jsm.consumers.add(names.stream("USERS"), { durable_name: "recreated", ack_policy: "explicit" as never });
    const msg = (await (await js.consumers.get(names.stream("USERS"), "recreated")).next({ expires: 5000 }))!;
    await publishDeadLetter(js, names, msg, { consumer: "recreated-test", error });
    msg.term();
    return msg.seq;
  };
  await jsm.streams.purge(names.stream("USERS"));
  await jsm.streams.delete(names.stream("USERS"));
  await ensureStreams(jsm, names, ["USERS"], { replicas: 1, maxAgeMs: 3600_000 });
  const first = await letterOf("first");
  await jsm.streams.delete(names.stream("USERS"));
  await ensureStreams(jsm, names, ["USERS"], { replicas: 1, maxAgeMs: 3600_000 });
  expect(await letterOf("second")).toBe(first);
  const payloads: string[] = [];
  for (let seq = 1; seq <= (await jsm.streams.info(names.stream("DLQ"))).state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(names.stream("DLQ"), { seq }).catch(() => undefined);
    if (m?.header.get("Orderflow-Dlq-Consumer") === "recreated-test") payloads.push(Buffer.from(m.data).toString());
  }
  expect(payloads).toEqual(["first", "second"]);
});
