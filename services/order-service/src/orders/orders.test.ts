import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, uuidv7 } from "@orderflow/shared";
import { createMigratedDatabase } from "@orderflow/shared/testing";
import { createApp } from "../app.js";
import { customers } from "../db/schema.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;
let app: ReturnType<typeof createApp>;
const known = uuidv7();

beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_orders_app");
  app = createApp({ db: env.db, log: createLogger({ service: "test", level: "silent" }), published: () => {} });
  await env.db.insert(customers).values({ userId: known, email: "k@example.com", name: "K", registeredAt: new Date() });
});
afterAll(() => env?.drop());

const post = (body: unknown, headers: Record<string, string> = { "content-type": "application/json" }) =>
  app.request("/orders", { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
const item = (over: Record<string, unknown> = {}) => ({ sku: "SKU-1", quantity: 2, unitPriceCents: 150, ...over });

async function problemOf(res: Response, status: number) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  return (await res.json()) as Record<string, any>;
}

describe("POST /orders", () => {
  it("creates an api order with its total and a Location header", async () => {
    const res = await post({ userId: known, items: [item(), item({ sku: "b_2", quantity: 1000, unitPriceCents: 1_000_000_000 })] });
    expect(res.status).toBe(201);
    const order = (await res.json()) as Record<string, any>;
    expect(order).toMatchObject({ userId: known, status: "created", source: "api", totalCents: 300 + 1_000_000_000_000 });
    expect(res.headers.get("location")).toBe(`/orders/${order.id}`);
  });

  it("keeps one spelling of the user id, and refuses unknown fields in the order and its items", async () => {
    const res = await post({ userId: known.toUpperCase(), items: [item()] });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { userId: string }).userId).toBe(known);
    await problemOf(await post({ userId: known, items: [item()], coupon: "X" }), 400);
    await problemOf(await post({ userId: known, items: [item({ discount: 5 })] }), 400);
  });

  it("answers 422 when the user is not known to the order service", async () => {
    const body = await problemOf(await post({ userId: uuidv7(), items: [item()] }), 422);
    expect(body.detail).toMatch(/not known/);
  });

  it("lists each invalid field with a 400", async () => {
    const body = await problemOf(
      await post({ userId: "nope", items: [item({ sku: "bad sku!" }), item({ quantity: 0 }), item({ unitPriceCents: 1.5 }), item({ quantity: 1001 })] }),
      400,
    );
    expect(body.errors.map((e: { pointer: string }) => e.pointer).sort()).toEqual(["/items/0/sku", "/items/1/quantity", "/items/2/unitPriceCents", "/items/3/quantity", "/userId"]);
    await problemOf(await post({ userId: known, items: [] }), 400);
    await problemOf(await post({ userId: known, items: Array.from({ length: 101 }, () => item()) }), 400);
    await problemOf(await post({ userId: known, items: [item({ sku: "x".repeat(65) })] }), 400);
  });

  it("answers 400/415/413 for malformed, non-JSON and oversized bodies", async () => {
    await problemOf(await post("{"), 400);
    await problemOf(await post("<xml/>", { "content-type": "text/xml" }), 415);
    await problemOf(await post({ userId: known, items: [item({ sku: "x".repeat(20_000) })] }), 413);
  });
});

describe("GET /orders", () => {
  it("gets one order, 404 for unknown ids, 400 for malformed ones", async () => {
    const created = (await (await post({ userId: known, items: [item()] })).json()) as { id: string };
    expect((await app.request(`/orders/${created.id}`)).status).toBe(200);
    await problemOf(await app.request(`/orders/${uuidv7()}`), 404);
    await problemOf(await app.request(`/orders/xyz`), 400);
    // It takes no query: a parameter sent anyway is refused by name, as on the listing.
    expect((await problemOf(await app.request(`/orders/${created.id}?expand=items`), 400)).errors[0]).toMatchObject({ in: "query", pointer: "/expand" });
  });

  it("filters by user and pages newest first", async () => {
    const other = uuidv7();
    await env.db.insert(customers).values({ userId: other, email: "o@example.com", name: "O", registeredAt: new Date() });
    for (let i = 0; i < 3; i++) await post({ userId: other, items: [item({ quantity: i + 1 })] });
    const first = (await (await app.request(`/orders?userId=${other}&limit=2`)).json()) as { items: any[]; nextCursor: string };
    expect(first.items.map((o) => o.items[0].quantity)).toEqual([3, 2]);
    const second = (await (await app.request(`/orders?userId=${other}&limit=2&cursor=${first.nextCursor}`)).json()) as { items: any[]; nextCursor: null };
    expect(second.items.map((o) => o.items[0].quantity)).toEqual([1]);
    expect(second.nextCursor).toBeNull();
    await problemOf(await app.request(`/orders?userId=abc`), 400);
    await problemOf(await app.request(`/orders?status=created`), 400);
    // A cursor from another listing, and one with characters base64url does not have.
    await problemOf(await app.request(`/orders?cursor=${Buffer.from(`users|2026-01-02T03:04:05.678Z|${other}`).toString("base64url")}`), 400);
    await problemOf(await app.request(`/orders?userId=${other}&limit=2&cursor=${first.nextCursor}!!!`), 400);
  });
});

describe("Idempotency-Key on POST /orders", () => {
  it("replays the same order for a retried request and refuses a changed body", async () => {
    const send = (body: unknown) =>
      app.request("/orders", { method: "POST", headers: { "content-type": "application/json", "idempotency-key": "order-key-1" }, body: JSON.stringify(body) });
    const body = { userId: known, items: [item()] };
    const [a, b] = await Promise.all([send(body), send(body)]);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(((await a.json()) as { id: string }).id).toBe(((await b.json()) as { id: string }).id);
    const changed = await send({ userId: known, items: [item({ quantity: 9 })] });
    expect(changed.status).toBe(422);
  });
});
