import { describe, expect, it } from "vitest";
import { InvalidEventError, UnknownEventTypeError } from "../errors/index.js";
import { createEvent } from "./create.js";
import { decodeEvent } from "./decode.js";

const userId = "01890a5d-ac96-774b-bcce-b302099a8057";
const registered = () =>
  createEvent({
    name: "users.registered",
    source: "/test",
    subject: userId,
    data: { userId, email: "a@b.co", name: "A", registeredAt: new Date().toISOString() },
  });

describe("CloudEvents encode/decode", () => {
  it("round-trips a catalog event through JSON", () => {
    const event = registered();
    const decoded = decodeEvent(JSON.stringify(event));
    expect(decoded.name).toBe("users.registered");
    expect(decoded.event).toEqual(event);
    expect(event.type).toBe("io.orderflow.user.registered.v1");
    expect(event.specversion).toBe("1.0");
  });

  it("treats bad JSON, bad envelopes, bad data and unknown types as permanent errors", () => {
    expect(() => decodeEvent("{nope")).toThrow(InvalidEventError);
    expect(() => decodeEvent(JSON.stringify({ hello: "world" }))).toThrow(/not a CloudEvent/);
    expect(() => decodeEvent(JSON.stringify({ ...registered(), data: { userId: "x" } }))).toThrow(/invalid io.orderflow.user.registered.v1 data/);
    expect(() => decodeEvent(JSON.stringify({ ...registered(), type: "io.orderflow.user.registered.v9" }))).toThrow(UnknownEventTypeError);
  });
});
