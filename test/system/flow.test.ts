import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { createEvent, createNames, uuidv7 } from "@orderflow/shared";
import { startSystem, waitFor, type TestSystem } from "@orderflow/shared/testing";
import { getUser, ordersOf, registerOk, waitSettled, waitForCount, waitForWelcome } from "./helpers.js";

let sys: TestSystem;
beforeAll(async () => {
  sys = await startSystem();
});
afterAll(() => sys?.cleanup());

describe("both services as separate processes", () => {
  it("register → welcome order → orderCount 1 → POST /orders → orderCount 2", async () => {
    const { "user-service": users, "order-service": orders } = sys.services;
    const user = await registerOk(users.url);
    const [welcome] = await waitForWelcome(orders.url, user.id);
    expect(welcome).toMatchObject({ userId: user.id, source: "registration", status: "created", items: [], totalCents: 0 });
    await waitForCount(users.url, user.id, 1);

    const res = await fetch(`${orders.url}/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: user.id, items: [{ sku: "TEA-1", quantity: 3, unitPriceCents: 499 }] }),
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ source: "api", totalCents: 1497 });
    await waitForCount(users.url, user.id, 2);
    expect(await ordersOf(orders.url, user.id)).toHaveLength(2);
  });

  it("keeps history for STREAM_MAX_AGE_MS (7 days by default) and dead letters until they are replayed or purged", async () => {
    const jsm = await jetstreamManager(sys.nc);
    const names = createNames(sys.namespace);
    const maxAge = async (stream: string) => (await jsm.streams.info(names.stream(stream))).config.max_age;
    expect(await maxAge("USERS")).toBe(7 * 24 * 3600 * 1e9);
    expect(await maxAge("DLQ")).toBe(0);
  });

  it("carries one trace id from the HTTP request through users.registered to the welcome order's orders.created", async () => {
    const { "user-service": users, "order-service": orders } = sys.services;
    const names = createNames(sys.namespace);
    const jsm = await jetstreamManager(sys.nc);
    // The message of `subject` whose event is about this user (the streams hold other tests' too).
    const messageFor = async (stream: "USERS" | "ORDERS", userId: string) =>
      waitFor(async () => {
        const info = await jsm.streams.info(names.stream(stream));
        for (let seq = info.state.last_seq; seq >= info.state.first_seq; seq--) {
          const m = await jsm.streams.getMessage(names.stream(stream), { seq }).catch(() => null);
          if (m && (JSON.parse(m.string()) as { data: { userId: string } }).data.userId === userId) return m;
        }
        return undefined;
      }, { what: `the ${stream} message of ${userId}` });
    const traceOf = (m: { header: { get(k: string): string } }) => /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(m.header.get("traceparent"))?.slice(1);

    const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const res = await fetch(`${users.url}/users`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: caller },
      body: JSON.stringify({ email: `trace${Date.now()}@example.com`, name: "Traced" }),
    });
    expect(res.status).toBe(201);
    const traced = (await res.json()) as { id: string };
    await waitForWelcome(orders.url, traced.id);
    const [registeredTrace, registeredSpan] = traceOf(await messageFor("USERS", traced.id))!;
    const [orderTrace, orderSpan] = traceOf(await messageFor("ORDERS", traced.id))!;
    expect([registeredTrace, orderTrace]).toEqual(["4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736"]);
    expect(new Set(["00f067aa0ba902b7", registeredSpan, orderSpan]).size).toBe(3); // a new parent id per hop

    // Without a caller's trace, the registration starts one and the welcome order continues it.
    const plain = await registerOk(users.url);
    await waitForWelcome(orders.url, plain.id);
    const [started] = traceOf(await messageFor("USERS", plain.id))!;
    const [continued] = traceOf(await messageFor("ORDERS", plain.id))!;
    expect(started).toMatch(/^[0-9a-f]{32}$/);
    expect(continued).toBe(started);
  });

  it("applies the same event delivered twice only once", async () => {
    const { "user-service": users, "order-service": orders } = sys.services;
    const user = await registerOk(users.url);
    await waitForWelcome(orders.url, user.id);

    // Re-publish the user's registration twice with fresh Nats-Msg-Ids, so the stream stores
    // both copies and the consumer really receives them: only the inbox can stop a second order.
    const names = createNames(sys.namespace);
    const js = jetstream(sys.nc);
    const event = createEvent({ name: "users.registered", source: "/test", subject: user.id, data: { userId: user.id, email: user.email, name: "Test User", registeredAt: new Date().toISOString() } });
    // Two copies of the original event, and one with a new event id for the same user (a
    // re-publish upstream): the inbox stops the first kind, the one-welcome-per-user index the second.
    for (const copy of [event, event, { ...event, id: uuidv7() }]) {
      await js.publish(names.subject("users.registered"), JSON.stringify(copy), { msgID: uuidv7() });
    }
    const jsm = await jetstreamManager(sys.nc);
    await waitFor(async () => {
      const info = await jsm.consumers.info(names.stream("USERS"), names.durable("order-service"));
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, { what: "order-service to consume every copy" });
    const welcomes = (await ordersOf(orders.url, user.id)).filter((o) => o.source === "registration");
    console.log(`duplicates: delivered=4 copies (1 original, 2 duplicates, 1 new id) for one user, welcome orders=${welcomes.length}`);
    expect(welcomes).toHaveLength(1);
    await waitForCount(users.url, user.id, 1);
    await waitSettled(sys);
    expect((await getUser(users.url, user.id)).orderCount).toBe(1);
  });
});
