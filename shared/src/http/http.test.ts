import { describe, expect, it } from "vitest";
import { z } from "zod";
import { HttpProblemError } from "../errors/index.js";
import { uuidv7 } from "../ids/index.js";
import { decodeCursor, encodeCursor, toPage } from "./cursor.js";
import { fieldErrors } from "./validation.js";

describe("cursor", () => {
  it("round-trips and rejects anything else with a 400 problem", () => {
    const c = { createdAt: new Date("2026-01-02T03:04:05.678Z"), id: uuidv7() };
    expect(decodeCursor(encodeCursor(c))).toEqual(c);
    for (const bad of ["x", encodeCursor(c) + "A", Buffer.from("2026|not-a-uuid").toString("base64url")]) {
      expect(() => decodeCursor(bad)).toThrow(HttpProblemError);
    }
  });

  it("pages with one extra row to know whether more exist", () => {
    const rows = [3, 2, 1].map((n) => ({ id: uuidv7(n), createdAt: new Date(n) }));
    const page = toPage(rows, 2, (r) => r.id);
    expect(page.items).toEqual([rows[0]!.id, rows[1]!.id]);
    expect(decodeCursor(page.nextCursor!).id).toBe(rows[1]!.id);
    expect(toPage(rows, 3, (r) => r.id).nextCursor).toBeNull();
  });
});

describe("fieldErrors", () => {
  it("points at each invalid field with a JSON pointer", () => {
    const schema = z.strictObject({ items: z.array(z.object({ sku: z.string().min(2) })) });
    const result = schema.safeParse({ items: [{ sku: "ok" }, { sku: "x" }], extra: 1 });
    expect(result.success).toBe(false);
    const errors = fieldErrors("body", result.error!);
    expect(errors.map((e) => e.pointer).sort()).toEqual(["/extra", "/items/1/sku"]);
  });
});

describe("uuidv7", () => {
  it("is a version-7 UUID that sorts by time", () => {
    const a = uuidv7(1_700_000_000_000);
    const b = uuidv7(1_700_000_000_001);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a < b).toBe(true);
  });
});
