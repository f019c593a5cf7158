import { describe, expect, it } from "vitest";
import { randomHex, uuidv7 } from "./index.js";

describe("uuidv7", () => {
  it("is an RFC 9562 version 7 UUID carrying the millisecond timestamp", () => {
    const now = Date.UTC(2026, 10, 26, 12, 0, 0, 123);
    const id = uuidv7(now);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(id.replace(/-/g, "").slice(0, 12), 16)).toBe(now);
  });

  it("stays unique and time-ordered across many pool refills", () => {
    const ids = Array.from({ length: 5000 }, (_, i) => uuidv7(1_700_000_000_000 + i));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    // Ids drawn from the same millisecond still differ in their random part.
    const same = Array.from({ length: 1000 }, () => uuidv7(1_700_000_000_000));
    expect(new Set(same).size).toBe(same.length);
  });
});

describe("randomHex", () => {
  it("gives that many random bytes as hex, and refuses sizes the pool does not serve", () => {
    expect(randomHex(8)).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set(Array.from({ length: 1000 }, () => randomHex(8))).size).toBe(1000);
    for (const bad of [0, 65, 1.5, 5000]) expect(() => randomHex(bad)).toThrow(RangeError);
  });
});
