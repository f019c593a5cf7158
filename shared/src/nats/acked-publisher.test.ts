import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders, type Msg, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { connectTestNats, startOwnNatsServer, teardown, uniqueNamespace, waitFor, type OwnNatsServer } from "../testing/index.js";
import { createAckedPublisher, PublishRejectedError, PublishTimeoutError, storedAck } from "./acked-publisher.js";

let nc: NatsConnection;
let jsm: JetStreamManager;
const stream = uniqueNamespace().toUpperCase();
const small = `${stream}_SMALL`;
/** The streams beforeAll made, so afterAll deletes exactly those and fails if one will not go. */
const created: string[] = [];

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 1, duplicate_window: 60_000_000_000 });
  created.push(stream);
  await jsm.streams.add({ name: small, subjects: [`${small}.>`], num_replicas: 1, max_msg_size: 128 });
  created.push(small);
});

afterAll(() =>
  teardown(
    ...created.map((name) => () => jsm.streams.delete(name)),
    () => nc?.close(),
  ),
);

/**
 * An own nats-server with an `admin` user and a `relay` user whose permissions are
 * `relayPermissions`; runs `body` with a connection as each, and closes everything after.
 */
async function withRelayUser(
  relayPermissions: string,
  body: (c: { server: OwnNatsServer; admin: NatsConnection; relay: NatsConnection; users: (relayPermissions: string) => string }) => Promise<void>,
  relayOptions: { inboxPrefix?: string } = {},
) {
  const users = (permissions: string) => `authorization { users = [
    { user: admin, password: admin }
    { user: relay, password: relay, permissions: ${permissions} }
  ] }`;
  const server = await startOwnNatsServer({ config: users(relayPermissions) });
  let admin: NatsConnection | undefined;
  let relay: NatsConnection | undefined;
  try {
    admin = await connect({ servers: server.url, user: "admin", pass: "admin" });
    relay = await connect({ servers: server.url, user: "relay", pass: "relay", ...relayOptions });
    await body({ server, admin, relay, users });
  } finally {
    // The server goes even when closing a connection failed.
    await teardown(
      () => relay?.close(),
      () => admin?.close(),
      () => server.dispose(),
    );
  }
}

describe("acked publisher", () => {
  it("stores each message once per Nats-Msg-Id and reports the copy as a duplicate, with its headers", async () => {
    const publisher = createAckedPublisher(nc);
    const h = natsHeaders();
    h.set("traceparent", "00-abc-def-01");
    const acks = await Promise.all(
      ["a", "b", "a"].map((id, i) => publisher.publish(`${stream}.x`, `payload ${i}`, { msgID: id, headers: i === 0 ? h : undefined })),
    );
    expect(acks.map((a) => [a.stream, a.duplicate])).toEqual([
      [stream, false],
      [stream, false],
      [stream, true],
    ]);
    expect(acks[2]!.seq).toBe(acks[0]!.seq);
    expect((await jsm.streams.info(stream)).state.messages).toBe(2);
    const first = await jsm.streams.getMessage(stream, { seq: acks[0]!.seq });
    expect(first!.string()).toBe("payload 0");
    expect(first!.header.get("Nats-Msg-Id")).toBe("a");
    expect(first!.header.get("traceparent")).toBe("00-abc-def-01");
    publisher.close();
  });

  it("rejects a message JetStream refuses and one no stream takes, and the others still succeed", async () => {
    const publisher = createAckedPublisher(nc);
    const results = await Promise.allSettled([
      publisher.publish(`${small}.x`, "x".repeat(500), { msgID: "big" }),
      publisher.publish(`nostream_${stream}.x`, "hello", { msgID: "lost" }),
      publisher.publish(`${small}.x`, "tiny", { msgID: "ok" }),
    ]);
    const [tooBig, nowhere, ok] = results;
    expect(tooBig!.status).toBe("rejected");
    expect((tooBig as PromiseRejectedResult).reason).toBeInstanceOf(PublishRejectedError);
    expect((tooBig as PromiseRejectedResult).reason.message).toMatch(/size/i);
    expect(nowhere!.status).toBe("rejected");
    expect((nowhere as PromiseRejectedResult).reason).toMatchObject({ name: "PublishRejectedError", code: 503, noStream: true });
    expect(ok).toMatchObject({ status: "fulfilled", value: { stream: small, duplicate: false } });
    publisher.close();
  });

  it("times out when nothing acknowledges, and a late answer changes nothing", async () => {
    // A plain subscriber takes the subject and answers only after the publisher gave up.
    const late: Msg[] = [];
    const slow = nc.subscribe(`slow_${stream}`, { callback: (_err, m) => void late.push(m) });
    const publisher = createAckedPublisher(nc, { timeoutMs: 150 });
    await expect(publisher.publish(`slow_${stream}`, "x", { msgID: "t" })).rejects.toBeInstanceOf(PublishTimeoutError);
    // The late ack is dropped; the next publish gets its own answer, not that one.
    await waitFor(() => late.length > 0 || undefined, { what: "the slow subscriber's copy" });
    late[0]!.respond(JSON.stringify({ stream: "LATE", seq: 99 }));
    const ack = await publisher.publish(`${stream}.x`, "after", { msgID: "after-late" });
    expect(ack).toMatchObject({ stream, duplicate: false });
    slow.unsubscribe();
    publisher.close();
  });

  it("passes a duplicate answer with sequence 0 on as such, and storedAck refuses it", async () => {
    // What a clustered stream on a server before 2.11 answers while the first copy is still
    // being proposed; a plain responder stands in for it (a single server never says it).
    const subject = `pending_${stream}`;
    const responder = nc.subscribe(subject, { callback: (_, m) => void m.respond(JSON.stringify({ stream, seq: 0, duplicate: true })) });
    const publisher = createAckedPublisher(nc);
    const ack = await publisher.publish(subject, "x", { msgID: "pending" });
    expect(ack).toMatchObject({ stream, seq: 0, duplicate: true });
    expect(() => storedAck(ack)).toThrow(PublishRejectedError);
    const stored = await publisher.publish(`${stream}.stored`, "y", { msgID: "stored" });
    expect(storedAck(stored)).toBe(stored);
    publisher.close();
    responder.unsubscribe();
  });

  it("subscribes again after losing its ack subscription, so a passing permissions fault does not fail it for good", async () => {
    const permissions = (inbox: string) => `{ publish: ">", subscribe: { ${inbox}: "_INBOX.>" } }`;
    await withRelayUser(permissions("deny"), async ({ server, admin, relay, users }) => {
      // A real stream, which the reload below must keep.
      await (await jetstreamManager(admin)).streams.add({ name: "PERM", subjects: ["perm.>"], num_replicas: 1 });
      const publisher = createAckedPublisher(relay, { timeoutMs: 1000 });
      // The server refuses the ack subscription: no ack can come back.
      await expect(publisher.publish("perm.a", "1", { msgID: "a" })).rejects.toThrow();
      server.reconfigure(users(permissions("allow")));
      const ack = await waitFor(() => publisher.publish("perm.b", "2", { msgID: "b" }).catch(() => undefined), { what: "a publish acknowledged after the permissions came back" });
      expect(storedAck(ack).stream).toBe("PERM");
      publisher.close();
    });
  });

  it("fails a publish the account may not make with the server's refusal, not a timeout, and the others still succeed", async () => {
    await withRelayUser(`{ publish: { allow: ">", deny: "refused.>" } }`, async ({ admin, relay }) => {
      await (await jetstreamManager(admin)).streams.add({ name: "REFUSED", subjects: ["refused.>", "allowed.>"], num_replicas: 1 });
      // Far longer than the test's own timeout: only the refusal itself can end these publishes.
      const publisher = createAckedPublisher(relay, { timeoutMs: 600_000 });
      const results = await Promise.allSettled([
        publisher.publish("refused.a", "1", { msgID: "r1" }),
        publisher.publish("allowed.a", "2", { msgID: "a1" }),
        publisher.publish("refused.a", "3", { msgID: "r2" }),
      ]);
      for (const refused of [results[0], results[2]]) {
        expect(refused).toMatchObject({ status: "rejected", reason: { name: "PublishRejectedError", code: 403 } });
        expect((refused as PromiseRejectedResult).reason.message).toMatch(/permissions violation.*refused\.a/i);
      }
      expect(results[1]).toMatchObject({ status: "fulfilled", value: { stream: "REFUSED", duplicate: false } });
      expect((await (await jetstreamManager(admin)).streams.info("REFUSED")).state.messages).toBe(1);
      publisher.close();
    });
  });

  it("asks for its acks under the connection's inbox prefix, so an account that allows only its own reply subjects gets them", async () => {
    await withRelayUser(`{ publish: ">", subscribe: { allow: "orderflow_r.>" } }`, async ({ admin, relay }) => {
      admin.subscribe("prefixed.>", { callback: (_, m) => void m.respond(JSON.stringify({ stream: "PREFIXED", seq: 1 })) });
      await admin.flush();
      const publisher = createAckedPublisher(relay, { timeoutMs: 2000 });
      expect(storedAck(await publisher.publish("prefixed.a", "1", { msgID: "a" })).stream).toBe("PREFIXED");
      publisher.close();
    }, { inboxPrefix: "orderflow_r" });
  });

  it("rejects publishes after close at once", async () => {
    const publisher = createAckedPublisher(nc);
    publisher.close();
    publisher.close();
    await expect(publisher.publish(`${stream}.x`, "z", { msgID: "closed" })).rejects.toThrow(/closed/);
  });

  it("rejects what is pending and what comes after once the connection closes", async () => {
    const own = await connectTestNats();
    const silent = own.subscribe(`silent2_${stream}`);
    const publisher = createAckedPublisher(own);
    const pending = publisher.publish(`silent2_${stream}`, "x", { msgID: "p" });
    await own.close();
    await expect(pending).rejects.toThrow();
    await expect(publisher.publish(`${stream}.x`, "y", { msgID: "q" })).rejects.toThrow();
    silent.unsubscribe();
  });
});
