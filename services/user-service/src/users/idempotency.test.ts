import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { createLogger, purgeIdempotencyKeys } from "@orderflow/shared";
import { createMigratedDatabase } from "@orderflow/shared/testing";
import { createApp } from "../app.js";
import { idempotencyKeys, outbox, users } from "../db/schema.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_users_idem");
  app = createApp({ db: env.db, log: createLogger({ service: "test", level: "silent" }), published: () => {} });
});
afterAll(() => env?.drop());

const post = (body: unknown, key?: string) =>
  app.request("/users", {
    method: "POST",
    headers: { "content-type": "application/json", ...(key === undefined ? {} : { "idempotency-key": key }) },
    body: JSON.stringify(body),
  });
const count = async (table: typeof users | typeof outbox) => ((await env.db.select({ n: sql<number>`count(*)::int` }).from(table)) as [{ n: number }])[0].n;
const email = () => `i${Math.random().toString(36).slice(2)}@example.com`;

describe("Idempotency-Key on POST /users", () => {
  it("replays the original status and body for the same key and body, without a second write", async () => {
    const body = { email: email(), name: "Idem" };
    const first = await post(body, "key-1");
    expect(first.status).toBe(201);
    const [usersBefore, eventsBefore] = [await count(users), await count(outbox)];
    const again = await post(body, "key-1");
    expect(again.status).toBe(201);
    expect(await again.json()).toEqual(await first.json());
    expect(again.headers.get("location")).toBe(first.headers.get("location"));
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect([await count(users), await count(outbox)]).toEqual([usersBefore, eventsBefore]);
  });

  it("answers 422 when the key is reused with a different body", async () => {
    await post({ email: email(), name: "A" }, "key-2");
    const res = await post({ email: email(), name: "B" }, "key-2");
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  });

  it("lets only one of many concurrent requests with one key write", async () => {
    const body = { email: email(), name: "Race" };
    const before = await count(users);
    const responses = await Promise.all(Array.from({ length: 8 }, () => post(body, "key-race")));
    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(201));
    const ids = new Set(await Promise.all(responses.map(async (r) => ((await r.json()) as { id: string }).id)));
    expect(ids.size).toBe(1);
    expect(await count(users)).toBe(before + 1);
  });

  // POST /users is the only route of this service that takes an Idempotency-Key, so there is no
  // second route here to show keys scoped per route with.
  it("does not store a failed attempt, so the same key then serves a new request", async () => {
    const taken = email();
    expect((await post({ email: taken, name: "First" })).status).toBe(201);
    expect((await post({ email: taken, name: "Second" }, "key-3")).status).toBe(409);
    const rows = await env.db.select().from(idempotencyKeys).where(sql`${idempotencyKeys.key} like '%key-3'`);
    expect(rows).toHaveLength(0);
    expect((await post({ email: email(), name: "Second" }, "key-3")).status).toBe(201);
  });

  it("rejects malformed keys with 400 and works unchanged without a key", async () => {
    for (const bad of ["", "x".repeat(256), "tab\there", "ünïcode"]) {
      const res = await app.request("/users", { method: "POST", headers: { "content-type": "application/json", "idempotency-key": bad }, body: JSON.stringify({ email: email(), name: "K" }) });
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
    }
    const body = { email: email(), name: "NoKey" };
    expect((await post(body)).status).toBe(201);
    expect((await post(body)).status).toBe(409);
  });

  it("keeps keys for the TTL and purges them after", async () => {
    await post({ email: email(), name: "Old" }, "key-old");
    await purgeIdempotencyKeys(env.db, 24 * 3600_000);
    expect(await env.db.select().from(idempotencyKeys).where(sql`${idempotencyKeys.key} like '%key-old'`)).toHaveLength(1);
    // Ages on the database's clock, which wrote created_at, whatever this process's says.
    await env.db.execute(sql`update idempotency_keys set created_at = now() - interval '25 hours' where key like '%key-old'`);
    await purgeIdempotencyKeys(env.db, 24 * 3600_000);
    expect(await env.db.select().from(idempotencyKeys).where(sql`${idempotencyKeys.key} like '%key-old'`)).toHaveLength(0);
  });
});
