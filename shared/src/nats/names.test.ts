import { describe, expect, it } from "vitest";
import { createNames } from "./names.js";

describe("createNames", () => {
  it("leaves names alone without a namespace", () => {
    const n = createNames("");
    expect([n.stream("USERS"), n.subject("users.registered"), n.durable("order-service")]).toEqual(["USERS", "users.registered", "order-service"]);
  });

  it("prefixes streams, subjects and durables, and strips the prefix back", () => {
    const n = createNames("t1");
    expect([n.stream("USERS"), n.subject("users.registered"), n.durable("order-service")]).toEqual(["t1_USERS", "t1.users.registered", "t1_order-service"]);
    expect(n.logicalSubject("t1.users.registered")).toBe("users.registered");
    expect(n.logicalSubject("other.users.registered")).toBe("other.users.registered");
  });
});
