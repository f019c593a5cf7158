import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq, sql } from "drizzle-orm";
import { createLogger, decodeEvent, type OutboxMessage } from "@orderflow/shared";
import { createMigratedDatabase, holdInTransaction, waitFor } from "@orderflow/shared/testing";
import { createApp } from "../app.js";
import { outbox, users } from "../db/schema.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;
let app: ReturnType<typeof createApp>;
const handed: OutboxMessage[] = [];

beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_users_app");
  app = createApp({ db: env.db, log: createLogger({ service: "test", level: "silent" }), published: (messages) => handed.push(...messages) });
});
afterAll(() => env?.drop());

const post = (body: unknown, headers: Record<string, string> = { "content-type": "application/json" }) =>
  app.request("/users", { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
const unique = () => `u${Math.random().toString(36).slice(2)}@example.com`;

async function expectProblem(res: Response, status: number) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = (await res.json()) as { status: number; title: string; type: string };
  expect(body.status).toBe(status);
  expect(body.title).toBeTruthy();
  return body as Record<string, any>;
}

describe("POST /users", () => {
  it("registers a trimmed user, answers 201 with Location, and writes the event in the same transaction", async () => {
    const email = unique();
    const before = handed.length;
    const res = await post({ email: `  ${email}  `, name: "  Ada Lovelace " });
    expect(res.status).toBe(201);
    const user = (await res.json()) as Record<string, unknown>;
    expect(user).toMatchObject({ email, name: "Ada Lovelace", orderCount: 0 });
    expect(res.headers.get("location")).toBe(`/users/${user.id}`);
    // The committed event is handed to the relay as well, byte for byte what the outbox holds.
    expect(handed.length).toBe(before + 1);

    const [row] = await env.db.select().from(outbox).where(eq(outbox.subject, "users.registered")).orderBy(outbox.seq);
    const rows = await env.db.select().from(outbox);
    const mine = rows.map((r) => decodeEvent(r.payload)).find((d) => d.event.subject === user.id);
    expect(row).toBeDefined();
    expect(mine?.name).toBe("users.registered");
    expect(mine?.event.data).toMatchObject({ userId: user.id, email, name: "Ada Lovelace" });
    const stored = rows.find((r) => r.eventId === mine?.event.id)!;
    expect(handed.at(-1)).toEqual({ eventId: stored.eventId, subject: "users.registered", payload: stored.payload, headers: stored.headers });
  });

  it("rejects a taken email regardless of case with 409, and writes no second event", async () => {
    const email = unique();
    expect((await post({ email, name: "A" })).status).toBe(201);
    const eventsBefore = (await env.db.select().from(outbox)).length;
    const body = await expectProblem(await post({ email: email.toUpperCase(), name: "B" }), 409);
    expect(body.detail).toMatch(/already exists/);
    expect((await env.db.select().from(outbox)).length).toBe(eventsBefore);
  });

  it("lists every invalid field in a 400 problem", async () => {
    const body = await expectProblem(await post({ email: "not-an-email", name: "   " }), 400);
    expect(body.errors.map((e: { pointer: string }) => e.pointer).sort()).toEqual(["/email", "/name"]);
    const tooLong = await expectProblem(await post({ email: unique(), name: "x".repeat(101) }), 400);
    expect(tooLong.errors[0].pointer).toBe("/name");
    // RFC 5321 §4.5.3.1.1: a local part has at most 64 octets; no mail server takes a longer one.
    const longLocal = await expectProblem(await post({ email: `${"a".repeat(65)}@example.com`, name: "A" }), 400);
    expect(longLocal.errors).toMatchObject([{ pointer: "/email", detail: expect.stringMatching(/at most 64 characters before the @/) }]);
    const local64 = `${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`.padEnd(64, "b");
    expect((await post({ email: `${local64}@example.com`, name: "A" })).status).toBe(201);
    const missing = await expectProblem(await post({}), 400);
    expect(missing.errors).toHaveLength(2);
    await expectProblem(await post([1, 2]), 400);
    await expectProblem(await post("null"), 400);
  });

  it("refuses names Postgres cannot store and unknown fields with field errors, not a 500", async () => {
    // NUL has no place in Postgres text; a lone surrogate has no UTF-8 form.
    for (const name of ["a\u0000b", "a\ud800b", "\udc00", "Ada\nLovelace", "Ada\u0007", "\u001b[31mAda", "Ada\u0085", "\u200b\u200b", "\u2060", "\u00a0\u200b", "\u3164", "\u2800\u2800", "\u115f\u1160", "a\u2028b", "a\u2029b", "\u202eevil\u202c", "a\u2066b\u2069", "\u0301", "\u0301\u0308"]) {
      const body = await expectProblem(await post({ email: unique(), name }), 400);
      expect(body.errors.map((e: { pointer: string }) => e.pointer)).toEqual(["/name"]);
    }
    const fancy = (await (await post({ email: unique(), name: "Ada 🚀 Lovelace" })).json()) as { id: string; name: string };
    expect(fancy.name).toBe("Ada 🚀 Lovelace");
    // Joiners inside a name are part of writing it (a family emoji, Persian's ZWNJ).
    for (const name of ["👨\u200d👩\u200d👧", "می\u200cخواهم", "李", "Jose\u0301", "שלום Ada"]) expect((await post({ email: unique(), name })).status, name).toBe(201);
    expect(((await (await app.request(`/users/${fancy.id}`)).json()) as { name: string }).name).toBe("Ada 🚀 Lovelace");
    // It takes no query: a parameter sent anyway is refused, as on the listing.
    await expectProblem(await app.request(`/users/${fancy.id}?fields=name`), 400);
    // One name, one form: decomposed accents are stored (and published) precomposed, so the
    // limit counts what a reader sees: 100 é typed as e + U+0301 are 100 characters, not 200.
    const decomposed = (await (await post({ email: unique(), name: "Jose\u0301 Nun\u0303ez" })).json()) as { id: string; name: string };
    expect(decomposed.name).toBe("Jos\u00e9 Nu\u00f1ez");
    const [event] = (await env.db.select().from(outbox)).map((r) => decodeEvent(r.payload)).filter((d) => d.event.subject === decomposed.id);
    expect(event?.event.data).toMatchObject({ name: "Jos\u00e9 Nu\u00f1ez" });
    expect((await post({ email: unique(), name: "e\u0301".repeat(100) })).status).toBe(201);
    await expectProblem(await post({ email: unique(), name: "e\u0301".repeat(101) }), 400);
    // Rows stored before this release keep the form they were typed in, until the migration.
    const [before] = await env.db.insert(users).values({ id: crypto.randomUUID(), email: unique(), name: "Ade\u0300le", orderCount: 0, createdAt: new Date() }).returning();
    await env.db.execute(sql.raw(readFileSync(new URL("../../drizzle/0004_names_nfc.sql", import.meta.url), "utf8")));
    expect((await env.db.select().from(users).where(eq(users.id, before!.id)))[0]?.name).toBe("Ad\u00e8le");
    const extra = await expectProblem(await post({ email: unique(), name: "A", admin: true }), 400);
    expect(extra.errors.length).toBeGreaterThan(0);
  });

  it("takes any JSON media type RFC 9110 allows, such as a space before the parameters", async () => {
    for (const type of ["application/json ; charset=utf-8", "application/vnd.orderflow.v2+json", "Application/JSON", "application/vnd_foo+json", "application/vnd.x!+json"]) {
      expect((await post({ email: unique(), name: "Typed" }, { "content-type": type })).status, type).toBe(201);
    }
  });

  it("answers 400 for malformed JSON, 415 for non-JSON and 413 past 16 KiB", async () => {
    // Malformed JSON is invalid input like any other: an `errors` entry for the body as a whole.
    expect((await expectProblem(await post("{bad json"), 400)).errors).toEqual([{ in: "body", pointer: "/", detail: expect.stringMatching(/JSON/) }]);
    // A field given twice is refused, not silently its last value (what a proxy that reads the first saw).
    const twice = `{"email":"${unique()}","name":"A","email":"${unique()}"}`;
    expect((await expectProblem(await post(twice), 400)).errors).toEqual([{ in: "body", pointer: "/email", detail: "is given more than once in its object: which one was meant cannot be known" }]);
    await expectProblem(await post("email=a", { "content-type": "application/x-www-form-urlencoded" }), 415);
    await expectProblem(await post("{}", {}), 415);
    for (const type of ["application/+json", "application/vnd foo+json", "application/.x+json"]) await expectProblem(await post("{}", { "content-type": type }), 415);
    await expectProblem(await post({ email: unique(), name: "x".repeat(17 * 1024) }), 413);
  });
});

describe("GET /users", () => {
  it("returns a user by id, 404 for an unknown id and 400 for a malformed one", async () => {
    const created = (await (await post({ email: unique(), name: "G" })).json()) as { id: string };
    const res = await app.request(`/users/${created.id}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: created.id, orderCount: 0 });
    await expectProblem(await app.request("/users/01890a5d-ac96-774b-bcce-b302099a8057"), 404);
    const bad = await expectProblem(await app.request("/users/123"), 400);
    expect(bad.errors[0]).toMatchObject({ in: "path", pointer: "/id" });
  });

  it("pages newest first with an opaque cursor", async () => {
    for (let i = 0; i < 3; i++) await post({ email: unique(), name: `P${i}` });
    const all = await env.db.select().from(users);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: Response = await app.request(`/users?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { items: { id: string; createdAt: string }[]; nextCursor: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((u) => u.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(all.length);
    expect(new Set(seen).size).toBe(all.length);
    const expected = [...all].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (b.id < a.id ? -1 : 1)).map((u) => u.id);
    expect(seen).toEqual(expected);
  });

  it("rejects bad limits, bad cursors and unknown parameters with 400", async () => {
    const id = "01890a5d-ac96-774b-bcce-b302099a8057";
    const cursor = (text: string) => Buffer.from(text).toString("base64url");
    for (const q of [
      "limit=0",
      "limit=101",
      "limit=abc",
      "limit=1e1",
      "limit=0x10",
      "cursor=zzz",
      "sort=name",
      // Times a Date reads but Postgres refuses: a 500 if they reached the query.
      `cursor=${cursor(`users|0000-01-01T00:00:00.000Z|${id}`)}`,
      `cursor=${cursor(`users|+275760-09-13T00:00:00.000Z|${id}`)}`,
      // Another listing's cursor.
      `cursor=${cursor(`orders|2026-01-02T03:04:05.678Z|${id}`)}`,
    ]) {
      await expectProblem(await app.request(`/users?${q}`), 400);
    }
  });
});

describe("a database that does not answer", () => {
  it("answers 503 past the request deadline instead of hanging; the write may still commit, and a retry with the key replays it", async () => {
    const slow = createApp({ db: env.db, log: createLogger({ service: "test", level: "silent" }), published: () => {} });
    slow.answerWithin(300);
    // A peer holding the table, as a frozen or partitioned database holds every statement.
    const hold = await holdInTransaction(env.db, sql`lock table users in access exclusive mode`);
    const body = JSON.stringify({ email: unique(), name: "Patient" });
    const send = () => slow.request("/users", { method: "POST", headers: { "content-type": "application/json", "idempotency-key": `deadline-${body}` }, body });
    let released = false;
    try {
      const res = await send();
      expect(res.headers.get("retry-after")).toBe("5");
      expect((await expectProblem(res, 503)).detail).toMatch(/not answered within 300 ms.*retry with the same Idempotency-Key/);
      await hold.release();
      released = true;
      // The first attempt committed once the lock went; the retry gets its answer, not a 409.
      await waitFor(async () => (await send()).status === 201, { what: "the replayed 201" });
      const replay = await send();
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
    } finally {
      if (!released) await hold.release();
    }
  });
});

describe("the rest of the surface", () => {
  it("serves its OpenAPI document and 404 problems for unknown routes", async () => {
    const doc = (await (await app.request("/openapi.json")).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).sort()).toEqual(["/users", "/users/{id}"]);
    // The document states the whole contract of a write: its headers, both ways, and every answer.
    type Op = { parameters?: { name: string; in: string }[]; responses: Record<string, { headers?: Record<string, unknown> }> };
    const paths = doc.paths as Record<string, Record<string, Op>>;
    const register = paths["/users"]!.post!;
    expect(register.parameters?.filter((p) => p.in === "header").map((p) => p.name).sort()).toEqual(["idempotency-key", "traceparent"]);
    expect(Object.keys(register.responses).sort()).toEqual(["201", "400", "409", "413", "415", "422", "503"]);
    expect(Object.keys(register.responses["201"]!.headers ?? {}).sort()).toEqual(["Idempotent-Replayed", "Location"]);
    for (const [path, op] of [["/users", "get"], ["/users/{id}", "get"]] as const) expect(paths[path]![op]!.responses["503"]!.headers, path).toHaveProperty("Retry-After");
    await expectProblem(await app.request("/nope"), 404);
    // A path it serves, with a method it does not take: 405 with what it takes.
    for (const [path, method, allow] of [
      ["/users/01890a5d-ac96-774b-bcce-b302099a8057", "DELETE", "GET, HEAD, OPTIONS"],
      ["/users", "PUT", "GET, HEAD, OPTIONS, POST"],
      ["/users/anything", "POST", "GET, HEAD, OPTIONS"],
    ]) {
      const res = await app.request(path!, { method });
      await expectProblem(res, 405);
      expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
    }
    await expectProblem(await app.request("/users/a/b", { method: "DELETE" }), 404);
  });
});
