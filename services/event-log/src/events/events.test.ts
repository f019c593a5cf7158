import { readFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { createEvent, createLogger, startHttpServer, uuidv7 } from "@orderflow/shared";
import { createMigratedDatabase, holdInTransaction, waitFor } from "@orderflow/shared/testing";
import { createApp } from "../app.js";
import { toEventRow } from "../ingest/ingest.domain.js";
import { createEventWriter } from "../ingest/ingest.store.js";
import { createTail, type Tail } from "./events.tail.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
const log = createLogger({ service: "test", level: "silent" });
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;
let app: ReturnType<typeof createApp>;
let tail: Tail;
let seq = 0;

beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_eventlog_app");
  tail = createTail({ db: env.db, log, pollMs: 100 });
  app = createApp({ db: env.db, log, tail, version: "1.2.3", keepAliveMs: 200 });
});
afterAll(async () => {
  tail?.close();
  await env?.drop();
});

/** A tail of the test's own, closed when the test ends, whether or not it got to its own close. */
const ownTail = (pollMs: number) => {
  const t = createTail({ db: env.db, log, pollMs });
  onTestFinished(() => t.close());
  return t;
};
const writer = () => createEventWriter({ db: env.db, onStored: () => tail.notify() });
const rowOf = (e: ReturnType<typeof createEvent>) =>
  toEventRow({ stream: e.type.includes(".order.created") ? "ORDERS" : "USERS", streamSeq: ++seq, streamTime: new Date(), subject: e.type.includes(".order.created") ? "orders.created" : "users.registered", data: Buffer.from(JSON.stringify(e)), headers: {} });
async function store(...events: ReturnType<typeof createEvent>[]) {
  return writer().write(events.map(rowOf));
}
function history(userId = uuidv7(), at = Date.now()) {
  const registered = createEvent({ name: "users.registered", source: "/orderflow/user-service", subject: userId, time: new Date(at), data: { userId, email: "a@b.co", name: "A", registeredAt: new Date(at).toISOString() } });
  const order = createEvent({
    name: "orders.created",
    source: "/orderflow/order-service",
    subject: userId,
    time: new Date(at + 5),
    data: { orderId: uuidv7(), userId, status: "created", source: "registration", items: [], totalCents: 0, createdAt: new Date(at + 5).toISOString() },
  });
  return { userId, registered, order };
}
async function problemOf(res: Response, status = 400) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  return (await res.json()) as { status: number; errors?: { pointer: string; detail: string }[] };
}
type Page = { items: { seq: number; id: string; type: string; entity: string; time: string }[]; nextCursor: string | null };
const get = async <T = Page>(url: string) => {
  const res = await app.request(url);
  expect(res.status, url).toBe(200);
  return (await res.json()) as T;
};

describe("GET /events", () => {
  it("gives one entity's whole history across services, newest first, and filters by type, source and time", async () => {
    const { userId, registered, order } = history();
    await store(registered, order, history().registered);
    const mine = await get(`/events?entity=${userId}`);
    expect(mine.items.map((e) => e.id)).toEqual([order.id, registered.id]);
    // A user id is a user id in any case, as on every other endpoint.
    expect((await get(`/events?entity=${userId.toUpperCase()}`)).items.map((e) => e.id)).toEqual([order.id, registered.id]);
    expect((await get(`/events?entity=${userId}&type=users.registered`)).items.map((e) => e.id)).toEqual([registered.id]);
    expect((await get(`/events?entity=${userId}&type=io.orderflow.order.created.v1`)).items.map((e) => e.id)).toEqual([order.id]);
    expect((await get(`/events?entity=${userId}&source=/orderflow/order-service&subject=orders.created`)).items).toHaveLength(1);
    expect((await get(`/events?entity=${userId}&from=${encodeURIComponent(order.time)}`)).items.map((e) => e.id)).toEqual([order.id]);
    expect((await get(`/events?entity=${userId}&to=${encodeURIComponent(order.time)}`)).items.map((e) => e.id)).toEqual([registered.id]);
    expect((await get(`/events?entity=${userId}&stream=ORDERS`)).items).toHaveLength(1);
    // Another publisher's upper-case user id is the same user: found by every spelling of it.
    const shouted = { ...history(userId, Date.now() + 10).order, id: uuidv7(), subject: userId.toUpperCase() };
    await store(shouted);
    const mixed = userId.slice(0, 18) + userId.slice(18).toUpperCase();
    for (const spelling of [userId, userId.toUpperCase(), mixed]) {
      expect((await get(`/events?entity=${spelling}`)).items.map((e) => e.id), spelling).toEqual([shouted.id, order.id, registered.id]);
    }
  });

  it("finds an upper-case user id stored before ingest lower-cased them, once migration 0001 has run", async () => {
    const { userId, registered } = history();
    // As an older build stored it: the entity as its publisher spelled it.
    await writer().write([{ ...rowOf(registered), entity: userId.toUpperCase() }]);
    expect((await get(`/events?entity=${userId}`)).items).toEqual([]);
    await env.db.execute(sql.raw(readFileSync(join(migrations, "0001_lowercase_uuid_entities.sql"), "utf8")));
    expect((await get(`/events?entity=${userId}`)).items.map((e) => [e.id, e.entity])).toEqual([[registered.id, userId]]);
  });

  it("takes RFC 3339 times with a lower-case t and z, and bounds finer than the millisecond times are stored in", async () => {
    const { userId, registered, order } = history(); // the order is 5 ms after the registration
    await store(registered, order);
    const ids = async (q: string) => (await get(`/events?entity=${userId}&${q}`)).items.map((e) => e.id);
    const iso = (ms: number, fraction = "") => new Date(ms).toISOString().replace("Z", `${fraction}Z`);
    const at = Date.parse(registered.time);
    expect(await ids(`from=${iso(at + 5).toLowerCase()}`)).toEqual([order.id]);
    expect(await ids(`to=${iso(at + 5).replace("T", "t")}`)).toEqual([registered.id]);
    // 0.1 µs past the registration's millisecond: after it, before the order.
    expect(await ids(`from=${iso(at, "0001")}`)).toEqual([order.id]);
    expect(await ids(`to=${iso(at, "0001")}`)).toEqual([registered.id]);
    expect(await ids(`from=${iso(at, "000")}&to=${iso(at, "0001")}`)).toEqual([registered.id]);
    // Within one millisecond, from < to is still told apart, and from ≥ to is still a 400.
    expect(await ids(`from=${iso(at, "0001")}&to=${iso(at, "0002")}`)).toEqual([]);
    expect((await problemOf(await app.request(`/events?from=${iso(at, "0002")}&to=${iso(at, "00019")}`))).errors?.[0]?.pointer).toBe("/to");
    // Rounded up, the last storable millisecond's fraction is a year Postgres cannot take: from
    // it nothing, before it everything.
    expect(await ids("from=9999-12-31T23:59:59.9999Z")).toEqual([]);
    expect(await ids("to=9999-12-31T23:59:59.9991%2B00:00")).toEqual([order.id, registered.id]);
  });

  it("pages newest first with a cursor, without gaps or repeats", async () => {
    const at = Date.parse("2020-01-01T00:00:00Z");
    const entity = uuidv7();
    const events = Array.from({ length: 5 }, (_, i) => history(entity, at + (i % 2) * 1000).registered); // ties on time
    await store(...events);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Page = await get(`/events?entity=${entity}&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.items.map((e) => e.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(5);
    const all = (await get(`/events?entity=${entity}&limit=200`)).items;
    expect(all.map((e) => e.id)).toEqual(seen);
    expect([...all].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : b.seq - a.seq)).map((e) => e.id)).toEqual(seen);
  });

  it("answers 400 problem+json for unknown parameters and malformed values", async () => {
    for (const q of ["foo=1", "limit=0", "limit=201", "limit=x", "from=yesterday", "to=2026-13-01T00:00:00Z", "cursor=zzz", "stream=NOPE", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "subject=a%00b", "entity=%00", "from=0000-01-01T00:00:00Z", "to=0000-12-31T00:00:00Z", `cursor=${Buffer.from("0000-01-01T00:00:00.000Z|5").toString("base64url")}`, `cursor=${Buffer.from("-200000-01-01T00:00:00.000Z|5").toString("base64url")}`,
      // Years 0100 and 9999 as written, but 0099 and 10000 once in UTC: outside what reads back the same.
      "from=0100-01-01T00:00:00%2B14:00", "from=0050-01-01T00:00:00Z", "from=9999-12-31T23:00:00-05:00", "to=9999-12-31T23:59:59-00:01",
      // Numbers JavaScript's Number() reads, which are not whole numbers as written.
      "limit=1e1", "limit=0x10", "limit=%201", "limit=1&limit=2",
      // A cursor with characters base64url does not have, which Node's decoder would skip.
      `cursor=${Buffer.from("2026-01-02T03:04:05.678Z|5").toString("base64url")}!!!`]) {
      const body = await problemOf(await app.request(`/events?${q}`));
      expect(body.status).toBe(400);
    }
    expect((await problemOf(await app.request("/events?bogus=1"))).errors?.[0]?.pointer).toBe("/bogus");
    // A time that is no time is told so, not also that it is outside the years 0100–9999.
    for (const bad of ["2026-11-29T23:59:60Z", "2026-11-29T00:00:00%2B01", "from=x"]) {
      const { errors } = await problemOf(await app.request(`/events?from=${bad.replace(/^from=/, "")}`));
      expect(errors?.map((e) => e.detail), bad).toEqual(["must be an RFC 3339 time with a zone, e.g. 2026-01-02T03:04:05Z"]);
    }
    // A "+" written as it is arrives as a space: the answer says how to send it.
    const { errors } = await problemOf(await app.request("/events?from=2026-11-29T00:00:00+01:00"));
    expect(errors?.[0]?.detail).toMatch(/a \+ in a query string reads as a space: write it as %2B$/);
    // A date and a time split by a space is no "+" gone missing.
    expect((await problemOf(await app.request("/events?from=2026-11-29%2003:04"))).errors?.[0]?.detail).toBe("must be an RFC 3339 time with a zone, e.g. 2026-01-02T03:04:05Z");
  });

  it("takes a type named like a property of every JavaScript object as a type no event has", async () => {
    const { userId, registered } = history();
    await store(registered);
    for (const type of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
      expect((await get(`/events?entity=${userId}&type=${type}`)).items, type).toEqual([]);
    }
  });
});

describe("GET /events/{id}", () => {
  it("returns an event by id, 404 for an unknown one and 400 for one too long to be stored", async () => {
    const { registered } = history();
    await store(registered);
    const got = await get<{ id: string; valid: boolean; data: unknown; copies: unknown[] }>(`/events/${registered.id}`);
    expect(got).toMatchObject({ id: registered.id, valid: true, data: registered.data, copies: [] });
    await problemOf(await app.request(`/events/${uuidv7()}`), 404);
    expect((await problemOf(await app.request(`/events/${registered.id}?stream=USERS`))).errors?.[0]?.pointer).toBe("/stream");
    await problemOf(await app.request("/events/not-stored"), 404);
    await problemOf(await app.request(`/events/${"x".repeat(513)}`), 400);
    await problemOf(await app.request("/events/a%00b"), 400); // a NUL Postgres cannot compare, not a 500
    // An invalid event is stored with the id it carried, UUID or not, and found by it.
    const foreign = `legacy-${uuidv7()}`;
    await writer().write([toEventRow({ stream: "USERS", streamSeq: ++seq, streamTime: new Date(), subject: "users.registered", data: Buffer.from(JSON.stringify({ id: foreign, type: "io.orderflow.user.registered.v1" })), headers: {} })]);
    expect(await get<{ id: string; valid: boolean }>(`/events/${foreign}`)).toMatchObject({ id: foreign, valid: false });
    await problemOf(await app.request(`/events/${foreign.toUpperCase()}`), 404); // only a UUID is matched in any case
    // The route takes an upper-case UUID, as /users/{id} does; the stored id is lower case.
    expect((await get<{ id: string }>(`/events/${registered.id.toUpperCase()}`)).id).toBe(registered.id);
  });
});

describe("GET /events/stats", () => {
  it("counts per type per minute over the window, every minute present", async () => {
    type Stats = { window: number; buckets: { minute: string; counts: Record<string, number> }[]; totals: Record<string, number> };
    const stats = () => get<Stats>("/events/stats?window=3");
    // The bucket of the event's own minute, not the current one: a minute may turn between the
    // write and the request.
    const countIn = (s: Stats, e: { type: string; time?: string }) => {
      const minute = `${new Date(e.time!).toISOString().slice(0, 16)}:00.000Z`;
      const bucket = s.buckets.find((b) => b.minute === minute);
      expect(bucket, `a bucket for ${minute} in ${s.buckets.map((b) => b.minute)}`).toBeDefined();
      return bucket!.counts[e.type] ?? 0;
    };
    const { registered, order } = history();
    // Other tests of this file stored events in the same minutes: count what this one adds.
    const before = await stats();
    await store(registered, order);
    const s = await stats();
    expect(s.window).toBe(3);
    expect(s.buckets).toHaveLength(3);
    expect(countIn(s, registered)).toBe(countIn(before, registered) + 1);
    expect(countIn(s, order)).toBe(countIn(before, order) + 1);
    // A dead letter is a copy of an event counted already (same type, same time), not another.
    const before2 = await stats();
    await writer().write([toEventRow({ stream: "DLQ", streamSeq: ++seq, streamTime: new Date(), subject: "dlq.order-service.users.registered", data: Buffer.from(JSON.stringify(registered)), headers: {} })]);
    expect(countIn(await stats(), registered)).toBe(countIn(before2, registered));
    // The totals are the buckets' sums.
    for (const type of [registered.type, order.type]) expect(s.totals[type]).toBe(s.buckets.reduce((n, b) => n + (b.counts[type] ?? 0), 0));
    for (const q of ["window=0", "window=1441", "window=x", "window=1e1", "other=1"]) await problemOf(await app.request(`/events/stats?${q}`));
  });
});

describe("GET /events/stream", () => {
  async function* sse(res: Response) {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const f: Record<string, string> = {};
          for (const line of frame.split("\n")) {
            const m = /^(\w+): ?(.*)$/.exec(line);
            if (m) f[m[1]!] = m[2]!;
            else if (line.startsWith(":")) f.comment = line.slice(1).trim();
          }
          // A keep-alive comment comes as event "keep-alive".
          yield f.event ? f : { ...f, event: f.comment ?? "" };
        }
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }
  const next = async (it: AsyncGenerator<Record<string, string>>, event = "event") => {
    for (;;) {
      const { value, done } = await it.next();
      if (done) throw new Error("stream ended");
      if (value.event === event) return value;
    }
  };

  it("tails new matching events as soon as this process stores them, and resumes after Last-Event-ID", async () => {
    // This tail would poll only every ten minutes: the event arrives within the test's time only
    // because storing it notifies the tail.
    const own = ownTail(600_000);
    const app = createApp({ db: env.db, log, tail: own, keepAliveMs: 200 });
    const store = (...events: ReturnType<typeof createEvent>[]) => createEventWriter({ db: env.db, onStored: () => own.notify() }).write(events.map(rowOf));
    const { userId, registered, order } = history();
    const ac = new AbortController();
    // Upper case: the live match and the catch-up query take a user id in any case.
    const res = await app.request(`/events/stream?entity=${userId.toUpperCase()}`, { signal: ac.signal });
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const it = sse(res);
    await next(it, "ready");
    await store(history().registered, registered); // the other entity is filtered out
    const first = await next(it);
    expect(JSON.parse(first.data!)).toMatchObject({ id: registered.id, entity: userId });
    ac.abort();
    await it.return(undefined);

    await store(order);
    const again = await app.request(`/events/stream?entity=${userId.toUpperCase()}`, { headers: { "last-event-id": first.id! } });
    const it2 = sse(again);
    const resumed = await next(it2);
    expect(JSON.parse(resumed.data!)).toMatchObject({ id: order.id });
    expect(Number(resumed.id)).toBeGreaterThan(Number(first.id));
    await it2.return(undefined);
  });

  it("serves at most maxStreams live tails at once, then 503 with Retry-After until one ends", async () => {
    const capped = createApp({ db: env.db, log, tail, keepAliveMs: 200, maxStreams: 1 });
    const ac = new AbortController();
    const first = await capped.request("/events/stream", { signal: ac.signal });
    const it = sse(first);
    await next(it, "ready");
    const refused = await capped.request("/events/stream");
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    await problemOf(refused, 503);
    ac.abort();
    await it.return(undefined);
    await waitFor(async () => {
      const res = await capped.request("/events/stream");
      if (res.status !== 200) return false;
      await res.body!.cancel();
      return true;
    }, { what: "a tail once the first one ended", timeoutMs: 5000 });
  });

  it("holds the cap when many tails open at once (a reconnect storm after a deploy)", async () => {
    const capped = createApp({ db: env.db, log, tail: ownTail(600_000), keepAliveMs: 60_000, maxStreams: 1 });
    const all = await Promise.all(Array.from({ length: 10 }, () => capped.request("/events/stream")));
    expect(all.map((r) => r.status).sort()).toEqual([200, ...Array(9).fill(503)]);
    await Promise.all(all.map((r) => r.body?.cancel()));
  });

  it("answers 503 past the request deadline while a frozen database keeps a tail from starting, and gives its slot back", async () => {
    const own = ownTail(600_000); // no listener yet: starting one asks the table
    const capped = createApp({ db: env.db, log, tail: own, keepAliveMs: 60_000, maxStreams: 1 });
    capped.answerWithin(300);
    // A peer holding the table, as a frozen or partitioned database holds every statement.
    const hold = await holdInTransaction(env.db, sql`lock table events in access exclusive mode`);
    let released = false;
    try {
      const res = await capped.request("/events/stream");
      expect(res.headers.get("retry-after")).toBe("5");
      expect(((await problemOf(res, 503)) as { detail?: string }).detail).toMatch(/not answered within 300 ms/);
      await hold.release();
      released = true;
      // The subscription that came too late let go of the one slot: the next client streams.
      const next = await waitFor(async () => {
        const r = await capped.request("/events/stream");
        if (r.status === 200) return r;
        await r.body?.cancel();
        return undefined;
      }, { what: "a tail once the database answers", timeoutMs: 5000 });
      const first = await next.body!.getReader().read();
      expect(new TextDecoder().decode(first.value)).toMatch(/^event: ready/m);
      await next.body!.cancel().catch(() => {});
    } finally {
      if (!released) await hold.release();
      own.close();
    }
  });

  it("ends a tail whose catch-up fails without telling the client the query", async () => {
    const own = ownTail(600_000);
    const holder = await own.subscribe(() => {}); // the tail knows its position: no query to start another
    const app = createApp({ db: env.db, log, tail: own, keepAliveMs: 60_000 });
    await env.db.execute(sql`alter table events rename to events_away`);
    try {
      const res = await app.request("/events/stream", { headers: { "last-event-id": "0" } });
      expect(res.status).toBe(200);
      const text = await res.text(); // the stream ends: the catch-up query failed
      expect(text).toMatch(/^event: ready/m);
      expect(text).not.toMatch(/^event: error/m);
      expect(text).not.toMatch(/select|params/i);
    } finally {
      await env.db.execute(sql`alter table events_away rename to events`);
      holder.unsubscribe();
      own.close();
    }
  });

  it("rejects unknown parameters and a malformed Last-Event-ID with 400", async () => {
    await problemOf(await app.request("/events/stream?foo=1"));
    await problemOf(await app.request("/events/stream", { headers: { "last-event-id": "abc" } }));
    // Past 15 digits a seq would not survive as a number: refused, not silently rounded.
    // The detail says what the limit is: a 16-digit number is a whole number too.
    const tooLong = await problemOf(await app.request("/events/stream", { headers: { "last-event-id": "9007199254740993" } }));
    expect(tooLong.errors).toEqual([expect.objectContaining({ pointer: "/Last-Event-ID", detail: expect.stringContaining("at most 15 digits") })]);
    const afterTooLong = await problemOf(await app.request("/events/stream?after=9007199254740993"));
    expect(afterTooLong.errors).toEqual([expect.objectContaining({ pointer: "/after", detail: expect.stringContaining("at most 15 digits") })]);
    // A repeated parameter is an error here too, not silently its first value.
    for (const q of ["after=1&after=2", "type=a&type=b"]) await problemOf(await app.request(`/events/stream?${q}`));
  });

  it("answers HEAD with the stream's headers without holding one of its live tails", async () => {
    const capped = createApp({ db: env.db, log, tail, keepAliveMs: 60_000, maxStreams: 2 });
    for (let i = 0; i < 5; i++) {
      const head = await capped.request("/events/stream", { method: "HEAD" });
      expect(head.status).toBe(200);
      expect(head.headers.get("content-type")).toMatch(/text\/event-stream/);
    }
    const res = await capped.request("/events/stream");
    expect(res.status).toBe(200);
    await res.body!.cancel();
  });

  it("resumes a Last-Event-ID past its own tail's position but within the log from there, without sending it again", async () => {
    // This replica's tail trails the table (it polls every ten minutes and is not told of the
    // rows another replica stores).
    const own = ownTail(600_000);
    const holder = await own.subscribe(() => {});
    const app = createApp({ db: env.db, log, tail: own, keepAliveMs: 60_000 });
    const { userId, registered, order } = history();
    await createEventWriter({ db: env.db }).write([rowOf(registered), rowOf(order)]);
    const [first] = (await env.db.execute(sql`select seq from events where event_id = ${registered.id}`)) as unknown as { seq: string }[];
    const res = await app.request(`/events/stream?entity=${userId}`, { headers: { "last-event-id": String(first!.seq) } });
    const it = sse(res);
    expect((await next(it, "ready")).id).toBe(String(first!.seq));
    expect(JSON.parse((await next(it)).data!)).toMatchObject({ id: order.id });
    await it.return(undefined);
    holder.unsubscribe();
    own.close();
  });

  it("starts a Last-Event-ID past the log's end (a log emptied or restored since) from the end, so new events still arrive", async () => {
    const own = ownTail(600_000);
    const app = createApp({ db: env.db, log, tail: own, keepAliveMs: 60_000 });
    const { userId, registered } = history();
    for (const resume of [{ headers: { "last-event-id": "999999999999999" } }, { url: "?after=999999999999999" }]) {
      const res = await app.request(`/events/stream${"url" in resume ? `${resume.url}&` : "?"}entity=${userId}`, "headers" in resume ? { headers: resume.headers } : {});
      const it = sse(res);
      const ready = await next(it, "ready");
      expect(Number(ready.id)).toBeLessThan(999999999999999);
      await createEventWriter({ db: env.db, onStored: () => own.notify() }).write([rowOf(registered)]);
      expect(JSON.parse((await next(it)).data!)).toMatchObject({ id: registered.id });
      await it.return(undefined);
    }
    own.close();
  });

  it("keeps a filtered tail alive while only rows it does not match arrive, and moves its Last-Event-ID past them", async () => {
    const own = ownTail(600_000);
    const keepAliveMs = 1000;
    const app = createApp({ db: env.db, log, tail: own, keepAliveMs });
    const storeOwn = (...events: ReturnType<typeof createEvent>[]) => createEventWriter({ db: env.db, onStored: () => own.notify() }).write(events.map(rowOf));
    const lastSeq = async () => Number(((await env.db.execute<{ seq: string }>(sql`select max(seq)::text as seq from events`)) as unknown as { seq: string }[])[0]!.seq);
    const { userId, registered } = history();
    const ac = new AbortController();
    const it = sse(await app.request(`/events/stream?entity=${userId}`, { signal: ac.signal }));
    await next(it, "ready");
    await storeOwn(registered);
    const first = await next(it);

    // Other entities' rows, far more often than the keep-alive interval, until the stream says
    // something anyway: each of them used to wake it and put the keep-alive off again.
    let stop = false;
    let trafficOver = false;
    const traffic = (async () => {
      for (let i = 0; !stop && i < 250; i++) {
        await storeOwn(history().registered);
        await new Promise((r) => setTimeout(r, 20));
      }
      trafficOver = true;
    })();
    const moved = await next(it, "position");
    const duringTraffic = !trafficOver;
    stop = true;
    await traffic;
    expect(duringTraffic).toBe(true);
    expect(Number(moved.id)).toBeGreaterThan(Number(first.id));
    expect(JSON.parse(moved.data!)).toEqual({ after: Number(moved.id) });

    // Once the traffic stops, the next one names the newest row: nothing matched since. Then a
    // plain keep-alive: nothing has moved.
    const newest = await lastSeq();
    let quiet = moved;
    while (Number(quiet.id) !== newest) quiet = await next(it, "position");
    expect((await it.next()).value).toMatchObject({ event: "keep-alive" });
    ac.abort();
    await it.return(undefined);

    // A reconnect from there gets what matches next, and nothing it already had.
    const { order } = history(userId);
    await storeOwn(order);
    const it2 = sse(await app.request(`/events/stream?entity=${userId}`, { headers: { "last-event-id": quiet.id! } }));
    expect(Number((await next(it2, "ready")).id)).toBe(newest);
    expect(JSON.parse((await next(it2)).data!).id).toBe(order.id);
    await it2.return(undefined);
    own.close();
  }, 30_000);

  // Small limits, so paging and a client's overflowing buffer happen with a handful of rows.
  const small = () => createApp({ db: env.db, log, tail, keepAliveMs: 200, tailLimits: { page: 3, maxQueued: 4 } });
  const sameEntity = (userId: string, n: number) => Array.from({ length: n }, (_, i) => history(userId, Date.now() + i * 10)).flatMap((h) => [h.registered, h.order]);

  it("resumes from the ready event's id however many rows were stored meanwhile, then goes live", async () => {
    const tiny = small();
    const userId = uuidv7();
    const ac = new AbortController();
    const it1 = sse(await tiny.request(`/events/stream?entity=${userId}`, { signal: ac.signal }));
    const ready = await next(it1, "ready");
    expect(ready.id).toMatch(/^\d+$/);
    expect(JSON.parse(ready.data!)).toEqual({ after: Number(ready.id) });
    ac.abort();
    await it1.return(undefined);

    // Stored while the client was away, before it saw any event: a browser sends the ready id back.
    const away = sameEntity(userId, 5);
    await store(...away);
    const ac2 = new AbortController();
    const it2 = sse(await tiny.request(`/events/stream?entity=${userId}`, { headers: { "last-event-id": ready.id! }, signal: ac2.signal }));
    const got: Record<string, string>[] = [];
    for (let i = 0; i < away.length; i++) got.push(await next(it2));
    expect(got.map((e) => JSON.parse(e.data!).id)).toEqual(away.map((e) => e.id));
    const seqs = got.map((e) => Number(e.id));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const live = history(userId);
    await store(live.registered);
    expect(JSON.parse((await next(it2)).data!).id).toBe(live.registered.id);
    ac2.abort();
    await it2.return(undefined);
  });

  it("gives a client whose live buffer overflows every row once, in order, from the table", async () => {
    const tiny = small();
    const userId = uuidv7();
    const ac = new AbortController();
    const it = sse(await tiny.request(`/events/stream?entity=${userId}`, { signal: ac.signal }));
    await next(it, "ready");
    const burst = sameEntity(userId, 6); // 12 rows in one poll: more than the client may hold
    await store(...burst);
    const after = history(userId);
    await store(after.registered);
    const got: string[] = [];
    for (let i = 0; i < burst.length + 1; i++) got.push(JSON.parse((await next(it)).data!).id);
    expect(got).toEqual([...burst, after.registered].map((e) => e.id));
    ac.abort();
    await it.return(undefined);
  });
});

describe("the live tail's bookkeeping", () => {
  it("cuts the socket of every live tail on shutdown, so a client that stopped reading cannot hold the server in a pending write", async () => {
    const own = ownTail(600_000);
    const app = createApp({ db: env.db, log, tail: own, keepAliveMs: 60_000 });
    // What @hono/node-server passes as env; a full socket would leave the handler waiting in a
    // write that only the socket's end can settle.
    let destroyed = 0;
    const outgoing = { destroy: () => void destroyed++, once: () => outgoing };
    const res = await app.fetch(new Request("http://x/events/stream"), { outgoing });
    const reader = res.body!.getReader();
    await reader.read(); // the ready event
    own.close(); // what the service's shutdown does first
    await waitFor(() => destroyed === 1, { what: "the tail's socket destroyed", timeoutMs: 5000 });
    await reader.cancel();
  });

  it("ends the live tails of clients that read with the stream's proper end on shutdown, not a cut connection", async () => {
    const own = ownTail(600_000);
    const app = createApp({ db: env.db, log, tail: own, keepAliveMs: 60_000 });
    const server = await startHttpServer((req, env) => app.fetch(req, env), 0, "127.0.0.1");
    onTestFinished(() => server.close());
    const ended = await new Promise<{ complete: boolean; body: string }>((resolve, reject) => {
      httpGet({ host: "127.0.0.1", port: server.port, path: "/events/stream" }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          body += d;
          if (/^event: ready/m.test(body)) own.close(); // what the service's shutdown does first
        });
        // `complete` only when the chunked body's last chunk came: a cut stream ends without it.
        res.on("end", () => resolve({ complete: res.complete, body })).on("error", reject);
      }).on("error", reject);
    });
    expect(ended.complete).toBe(true);
    expect(ended.body).toMatch(/^event: ready/m);
  });

  it("frees the live tail of a client that closed its connection within seconds, not at the next keep-alive; one that only half-closed keeps reading", async () => {
    const own = ownTail(600_000);
    onTestFinished(() => own.close());
    // One slot and a keep-alive far away: the slot must come back through the client's FIN.
    const app = createApp({ db: env.db, log, tail: own, keepAliveMs: 60_000, maxStreams: 1 });
    const server = await startHttpServer((req, env) => app.fetch(req, env), 0, "127.0.0.1");
    onTestFinished(() => server.close());
    const url = `http://127.0.0.1:${server.port}/events/stream`;
    await new Promise<void>((resolve, reject) => {
      const req = httpGet(url, (res) => {
        res.setEncoding("utf8").once("data", () => (req.destroy(), resolve())); // a closed tab
      }).on("error", (err) => (req.destroyed ? undefined : reject(err)));
    });
    const next = await waitFor(
      async () => {
        const res = await fetch(url);
        if (res.status === 503) return void (await res.body?.cancel());
        return res;
      },
      { what: "the slot back", timeoutMs: 10_000, intervalMs: 200 },
    );
    expect(next.status).toBe(200);
    await next.body!.cancel();
    // `printf 'GET …' | nc`: the request, then a half-close; the stream goes on (its own server,
    // as the slot of the fetch above may still be on its way back).
    const uncapped = createApp({ db: env.db, log, tail: own, keepAliveMs: 60_000 });
    const open = await startHttpServer((req, env) => uncapped.fetch(req, env), 0, "127.0.0.1");
    onTestFinished(() => open.close());
    const socket = tcpConnect(open.port, "127.0.0.1");
    onTestFinished(() => void socket.destroy());
    socket.end("GET /events/stream HTTP/1.1\r\nhost: x\r\n\r\n");
    let received = "";
    socket.setEncoding("utf8").on("data", (d: string) => (received += d));
    await waitFor(() => (received.match(/^: keep-alive/gm) ?? []).length >= 2 || undefined, { what: "keep-alives after the half-close", timeoutMs: 10_000 });
    expect(received).toMatch(/^event: ready/m);
    expect(socket.destroyed).toBe(false);
  });

  it("lets go of a client that leaves while the tail is still finding its position", async () => {
    const real = ownTail(50);
    let active = 0;
    let subscribed = 0;
    // Counts listeners the handler holds; the real tail does the work.
    const counting: Tail = {
      ...real,
      async subscribe(listener, onClose) {
        const s = await real.subscribe(listener, onClose);
        active++;
        subscribed++;
        return { position: s.position, unsubscribe: () => (active--, s.unsubscribe()) };
      },
    };
    const res = await createApp({ db: env.db, log, tail: counting, keepAliveMs: 100 }).request("/events/stream");
    await res.body!.cancel(); // gone before the ready event
    await waitFor(() => subscribed === 1 && active === 0, { timeoutMs: 3000, what: "the handler to subscribe, then unsubscribe" });
    real.close();
  });

  it("refuses a subscriber still finding its position when the tail closes, instead of adding a listener nobody will end", async () => {
    const own = ownTail(50);
    const pending = own.subscribe(() => {});
    own.close(); // shutdown, while the first max(seq) query is in flight
    await expect(pending).rejects.toThrow(/closed/);
  });

  it("gives a subscriber the rows it is owed when the last other listener leaves while it waits", async () => {
    const own = ownTail(50);
    await store(history().registered);
    const a = await own.subscribe(() => {});
    const got: number[] = [];
    const pending = own.subscribe((rows) => got.push(...rows.map((r) => r.seq)));
    a.unsubscribe(); // the same tick: the tail has no listener while `pending` waits for its position
    const b = await pending;
    const { userId, registered, order } = history();
    await store(registered, order);
    const c = await own.subscribe(() => {}); // would have re-read max(seq), past b's rows
    await waitFor(() => got.length >= 2, { timeoutMs: 3000, what: `rows after ${b.position} for ${userId}` });
    expect(got.every((seq) => seq > b.position)).toBe(true);
    b.unsubscribe();
    c.unsubscribe();
    own.close();
  });
});

describe("catalog, AsyncAPI and the page", () => {
  it("derives the catalog and an AsyncAPI 3.0 document from the zod schemas", async () => {
    const catalog = await get<{ streams: { name: string }[]; events: { name: string; type: string; dataSchema: { properties: Record<string, unknown> } }[] }>("/catalog");
    expect(catalog.streams.map((s) => s.name)).toEqual(["USERS", "ORDERS", "SYSTEM", "DLQ"]);
    const reg = catalog.events.find((e) => e.name === "users.registered")!;
    expect(reg.type).toBe("io.orderflow.user.registered.v1");
    expect(reg.dataSchema.properties.userId).toMatchObject({ type: "string", format: "uuid" });
    const doc = await get<{ asyncapi: string; info: { version: string }; channels: Record<string, { address: string }>; operations: Record<string, { action: string }> }>("/asyncapi.json");
    expect(doc.asyncapi).toBe("3.0.0");
    expect(doc.info.version).toBe("1.2.3");
    expect(Object.values(doc.channels).map((c) => c.address)).toContain("orders.created");
    expect(Object.keys(doc.operations)).toHaveLength(catalog.events.length);
    // The server is the NATS the services use, without the credentials NATS_URL may carry.
    const withUrl = createApp({ db: env.db, log, tail, natsUrl: "nats://svc:s3cret@nats.prod.internal:4333,nats://other:4222" });
    const served = (await (await withUrl.request("/asyncapi.json")).json()) as { servers: { nats: { host: string } } };
    expect(served.servers.nats.host).toBe("nats.prod.internal:4333");
    expect(JSON.stringify(served)).not.toContain("s3cret");
    const openapi = await get<{ paths: Record<string, unknown> }>("/openapi.json");
    expect(Object.keys(openapi.paths).sort()).toEqual(["/asyncapi.json", "/catalog", "/events", "/events/stats", "/events/stream", "/events/{id}"]);
  });

  it("serves the page without a build step", async () => {
    const res = await app.request("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toContain('<html lang="en">');
    expect(html).toContain("EventSource");
  });
});

it("ignores a batch stored twice (redelivery)", async () => {
  const { registered } = history();
  const row = toEventRow({ stream: "USERS", streamSeq: 999_999, streamTime: new Date(), subject: "users.registered", data: Buffer.from(JSON.stringify(registered)), headers: {} });
  expect(await writer().write([row])).toEqual([999_999]);
  expect(await writer().write([row])).toEqual([]);
  // Both writes have committed: the log answers from the table at once.
  expect((await get(`/events?entity=${registered.subject}`)).items.map((i) => i.id)).toEqual([registered.id]);
});
