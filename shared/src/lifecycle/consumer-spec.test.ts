import { describe, expect, it } from "vitest";
import { baseConfigSchema, loadConfig } from "../config/config.js";
import { createLogger } from "../logger/index.js";
import { consumerFor, runService, streamsOf } from "./service.js";

const noop = async () => {};

describe("consumerFor and streamsOf", () => {
  it("take a consumer's stream and filter subject from the catalog entry of its one event type", () => {
    expect(consumerFor("notification-service", { "orders.created": noop })).toEqual({ stream: "ORDERS", durable: "notification-service", filterSubject: "orders.created", handlers: { "orders.created": noop } });
  });

  it("refuse handlers of none or of two event types (one filter subject per consumer), or of an event the catalog does not have", () => {
    expect(() => consumerFor("x", {})).toThrow(/exactly one event type, got 0/);
    expect(() => consumerFor("x", { "orders.created": noop, "users.registered": noop })).toThrow(/got 2 \(orders.created, users.registered\); give one consumer, with a durable name of its own, per event type/);
    expect(() => consumerFor("x", { "orders.cancelled": noop } as never)).toThrow(/orders.cancelled is not in the event catalog/);
    expect(() => consumerFor("x", { toString: noop } as never)).toThrow(/toString is not in the event catalog/);
    expect(() => consumerFor("x", { "orders.created": undefined })).toThrow(/the handler for orders.created is not a function/);
  });

  it("give a service the streams of the events it produces and consumes", () => {
    expect(streamsOf({ name: "user-service", consumers: [consumerFor("user-service", { "orders.created": noop })] }).sort()).toEqual(["ORDERS", "USERS"]);
    expect(streamsOf({ name: "notification-service", consumers: [consumerFor("notification-service", { "orders.created": noop })] })).toEqual(["ORDERS"]);
    expect(streamsOf({ name: "order-service", consumers: [] })).toEqual(["ORDERS"]);
  });

  it("a service with two consumers of one durable name does not start, and says why", async () => {
    const spec = {
      name: "x",
      version: "1",
      config: loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://memory" }),
      log: createLogger({ service: "x", level: "silent" }),
      migrationsFolder: "/nonexistent",
      buildApp: () => {
        throw new Error("not reached");
      },
      consumers: [consumerFor("x", { "orders.created": noop }), consumerFor("x", { "users.registered": noop })],
    };
    await expect(runService(spec)).rejects.toThrow(/two consumers are named x: give each consumer a durable name of its own/);
  });
});
