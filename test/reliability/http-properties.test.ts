import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { createLogger, uuidv7 } from "@orderflow/shared";
import { createMigratedDatabase } from "@orderflow/shared/testing";
import { createApp as createUserApp } from "../../services/user-service/src/app.js";
import { createApp as createOrderApp } from "../../services/order-service/src/app.js";
import { customers } from "../../services/order-service/src/db/schema.js";
import { report } from "./helpers.js";

// Property: whatever a client sends — any body, size, encoding, Content-Type, a lying
// Content-Length, an Idempotency-Key of random bytes — the answer is never a 5xx, and every
// non-2xx answer is a problem+json document whose `status` matches the response.

type Env = Awaited<ReturnType<typeof createMigratedDatabase>>;
const log = createLogger({ service: "property-test", level: "silent" });
let userEnv: Env;
let orderEnv: Env;
let apps: { users: ReturnType<typeof createUserApp>; orders: ReturnType<typeof createOrderApp> };
const knownUser = uuidv7();

beforeAll(async () => {
  // One after the other: with Promise.all, one that failed left the other made and never dropped.
  userEnv = await createMigratedDatabase(fileURLToPath(new URL("../../services/user-service/drizzle", import.meta.url)), "of_prop_users");
  orderEnv = await createMigratedDatabase(fileURLToPath(new URL("../../services/order-service/drizzle", import.meta.url)), "of_prop_orders");
  await orderEnv.db.insert(customers).values({ userId: knownUser, email: "k@example.com", name: "K", registeredAt: new Date() });
  apps = {
    users: createUserApp({ db: userEnv.db, log, published: () => {} }),
    orders: createOrderApp({ db: orderEnv.db, log, published: () => {} }),
  };
});
afterAll(async () => {
  await Promise.all([userEnv?.drop(), orderEnv?.drop()]);
});

const enc = new TextEncoder();

/** Header values must be ByteStrings without NUL, CR or LF; anything else is fair game. */
const headerBytes = (max: number) =>
  fc.array(fc.integer({ min: 1, max: 255 }).filter((b) => b !== 10 && b !== 13), { minLength: 0, maxLength: max }).map((bs) => String.fromCharCode(...bs));

const contentType = fc.oneof(
  fc.constantFrom(
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON; charset=latin1",
    "application/problem+json",
    "application/merge-patch+json",
    "text/plain",
    "text/json",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "",
    ";;;",
  ),
  headerBytes(40),
);

/** Bodies: valid-looking ones often (so the write path runs), arbitrary ones the rest of the time. */
const userBody = fc.oneof(
  fc.record({ email: fc.oneof(fc.emailAddress(), fc.string()), name: fc.oneof(fc.string({ maxLength: 300 }), fc.integer()) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ unit: "binary", maxLength: 500 }),
);
const orderBody = fc.oneof(
  fc
    .record({
      userId: fc.oneof(fc.constant(knownUser), fc.uuid(), fc.string()),
      items: fc.array(
        fc.record({ sku: fc.oneof(fc.constant("SKU-1"), fc.string()), quantity: fc.oneof(fc.integer({ min: -5, max: 2000 }), fc.double()), unitPriceCents: fc.oneof(fc.integer(), fc.double(), fc.string()) }, { requiredKeys: [] }),
        { maxLength: 120 },
      ),
    }, { requiredKeys: [] })
    .map((o) => JSON.stringify(o)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ unit: "binary", maxLength: 500 }),
);

const bytesOf = (body: string, mangle: "none" | "bom" | "invalid-utf8" | "huge" | "latin1") => {
  switch (mangle) {
    case "none":
      return enc.encode(body);
    case "bom":
      return enc.encode(`\uFEFF${body}`);
    case "invalid-utf8":
      return new Uint8Array([...enc.encode(body.slice(0, 50)), 0xff, 0xfe, 0xc3, 0x28, ...enc.encode(body.slice(50))]);
    case "huge":
      return enc.encode(body.padEnd(20_000 + body.length, " "));
    case "latin1":
      return Uint8Array.from(body, (ch) => ch.charCodeAt(0) & 0xff);
  }
};

/** Well-formed writes (some with a random Idempotency-Key), so the write path and the key check run too. */
const honestBody = (route: "users" | "orders") =>
  route === "users"
    ? fc.record({ email: fc.stringMatching(/^[a-z0-9]{1,20}$/).map((l) => `${l}@example.com`), name: fc.string({ minLength: 1, maxLength: 50 }) }).map((o) => JSON.stringify(o))
    : fc.integer({ min: 1, max: 5 }).map((quantity) => JSON.stringify({ userId: knownUser, items: [{ sku: "SKU-1", quantity, unitPriceCents: 100 }] }));
const honest = (route: "users" | "orders") =>
  fc.record({
    body: honestBody(route),
    mangle: fc.constant("none" as const),
    contentType: fc.constant("application/json"),
    contentLength: fc.constant(undefined),
    contentEncoding: fc.constant(undefined),
    idempotencyKey: fc.option(fc.oneof(headerBytes(300), fc.constantFrom("k1", "k2", "k3")), { nil: undefined }),
  });

const request = (route: "users" | "orders") => fc.oneof(honest(route), arbitraryRequest(route));
const arbitraryRequest = (route: "users" | "orders") =>
  fc.record({
    body: route === "users" ? userBody : orderBody,
    mangle: fc.constantFrom("none", "none", "none", "bom", "invalid-utf8", "huge", "latin1"),
    contentType: fc.option(contentType, { nil: undefined }),
    contentLength: fc.option(fc.oneof(fc.nat({ max: 100_000 }), fc.constantFrom("-1", "abc", "1e3", "")), { nil: undefined }),
    contentEncoding: fc.option(fc.constantFrom("gzip", "br", "identity", "deflate, gzip"), { nil: undefined }),
    idempotencyKey: fc.option(headerBytes(300), { nil: undefined }),
  });

const stats = { requests: 0, byStatus: new Map<number, number>() };

async function expectNoServerError(res: Response, what: string) {
  stats.requests += 1;
  stats.byStatus.set(res.status, (stats.byStatus.get(res.status) ?? 0) + 1);
  const text = await res.text();
  expect(res.status, `${what} → ${res.status} ${text.slice(0, 300)}`).toBeLessThan(500);
  if (res.status >= 300) {
    expect(res.headers.get("content-type"), `${what} → ${res.status}`).toBe("application/problem+json");
    const problem = JSON.parse(text) as { status: number; title: string };
    expect(problem.status).toBe(res.status);
    expect(typeof problem.title).toBe("string");
  }
}

describe("HTTP inputs (property-based)", () => {
  for (const route of ["users", "orders"] as const) {
    it(`POST /${route}: random bodies, headers, sizes and encodings never yield a 5xx; every rejection is problem+json`, async () => {
      const app = apps[route];
      await fc.assert(
        fc.asyncProperty(request(route), async (r) => {
          const headers = new Headers();
          if (r.contentType !== undefined) headers.set("content-type", r.contentType);
          if (r.contentLength !== undefined) headers.set("content-length", String(r.contentLength));
          if (r.contentEncoding !== undefined) headers.set("content-encoding", r.contentEncoding);
          if (r.idempotencyKey !== undefined) headers.set("idempotency-key", r.idempotencyKey);
          const res = await app.request(`/${route}`, { method: "POST", headers, body: bytesOf(r.body, r.mangle) });
          await expectNoServerError(res, `POST /${route} ${JSON.stringify({ ...r, body: r.body.slice(0, 200) })}`);
        }),
        { numRuns: 500 },
      );
    });
  }

  it("GET routes: random ids, query strings and paths never yield a 5xx", async () => {
    const segment = fc.oneof(fc.uuid(), fc.string({ maxLength: 80 }), fc.constant(knownUser)).map((s) => encodeURIComponent(s));
    const query = fc.dictionary(fc.constantFrom("userId", "limit", "cursor", "status", "x"), fc.oneof(fc.string({ maxLength: 60 }), fc.integer().map(String), fc.uuid()), { maxKeys: 4 });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("users", "orders"), segment, query, async (route, id, q) => {
        const app = apps[route];
        const qs = new URLSearchParams(q).toString();
        await expectNoServerError(await app.request(`/${route}/${id}`), `GET /${route}/${id}`);
        await expectNoServerError(await app.request(`/${route}?${qs}`), `GET /${route}?${qs}`);
      }),
      { numRuns: 200 },
    );
    report("HTTP properties", {
      sent: stats.requests,
      accepted: [...stats.byStatus].filter(([s]) => s < 300).reduce((a, [, n]) => a + n, 0),
      created: stats.byStatus.get(201) ?? 0,
      serverErrors: [...stats.byStatus].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0),
      statuses: [...stats.byStatus].sort(([a], [b]) => a - b).map(([s, n]) => `${s}:${n}`).join(","),
    });
  });
});
