import { describe, expect, it } from "vitest";
import { childTraceparent, traceHeaders, traceIdOf } from "./trace.js";
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
    // The same id in another spelling would pass the inbox (it compares text): refused.
    const e = registered();
    expect(() => decodeEvent(JSON.stringify({ ...e, id: e.id.toUpperCase() }))).toThrow(/lower-case UUID/);
  });
});

describe("trace context", () => {
  const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  it("continues a valid traceparent with a new parent id, its trace id and flags kept", () => {
    const child = childTraceparent(parent);
    expect(child).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(child).not.toBe(parent);
    expect(traceIdOf(child)).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(traceHeaders(parent)).toEqual({ traceparent: expect.stringMatching(/^00-4bf92f3577b34da6a3ce929d0e0e4736-/) });
  });

  it.each([undefined, "", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"])(
    "starts a new trace for %j",
    (bad) => {
      const fresh = childTraceparent(bad);
      expect(traceIdOf(fresh)).toMatch(/^[0-9a-f]{32}$/);
      expect(traceIdOf(fresh)).not.toBe("4bf92f3577b34da6a3ce929d0e0e4736");
      expect(childTraceparent(bad)).not.toBe(fresh);
    },
  );
});
