import { describe, expect, it } from "vitest";
import { consumerFor, streamsOf } from "./service.js";

const noop = async () => {};

describe("consumerFor and streamsOf", () => {
  it("take a consumer's stream and filter subject from the catalog entry of its one event type", () => {
    expect(consumerFor("notification-service", { "orders.created": noop })).toEqual({ stream: "ORDERS", durable: "notification-service", filterSubject: "orders.created", handlers: { "orders.created": noop } });
  });

  it("refuse handlers of none or of two event types (one filter subject per consumer)", () => {
    expect(() => consumerFor("x", {})).toThrow(/exactly one event type, got 0/);
    expect(() => consumerFor("x", { "orders.created": noop, "users.registered": noop })).toThrow(/got 2 \(orders.created, users.registered\); give one consumer per event type/);
  });

  it("give a service the streams of the events it produces and consumes", () => {
    expect(streamsOf({ name: "user-service", consumers: [consumerFor("user-service", { "orders.created": noop })] }).sort()).toEqual(["ORDERS", "USERS"]);
    expect(streamsOf({ name: "notification-service", consumers: [consumerFor("notification-service", { "orders.created": noop })] })).toEqual(["ORDERS"]);
    expect(streamsOf({ name: "order-service", consumers: [] })).toEqual(["ORDERS"]);
  });
});
