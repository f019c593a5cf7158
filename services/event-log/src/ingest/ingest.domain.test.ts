import { describe, expect, it } from "vitest";
import { createEvent, uuidv7 } from "@orderflow/shared";
import { MAX_JSON_DEPTH, MAX_STORED_BODY, refusedRow, toEventRow, unreadableRow, type RawMessage } from "./ingest.domain.js";
import { streamCatalog } from "@orderflow/shared";

const userId = uuidv7();
const registered = () =>
  createEvent({ name: "users.registered", source: "/orderflow/user-service", subject: userId, data: { userId, email: "a@b.co", name: "A", registeredAt: new Date().toISOString() } });
const msg = (body: unknown, headers: Record<string, string> = {}): RawMessage => ({
  stream: "USERS",
  streamSeq: 7,
  streamTime: new Date("2026-01-02T03:04:05.678Z"),
  subject: "users.registered",
  data: Buffer.from(typeof body === "string" ? body : JSON.stringify(body)),
  headers,
});

describe("toEventRow", () => {
  it("maps a valid event's envelope, data and trace headers", () => {
    const e = registered();
    const row = toEventRow(msg(e, { traceparent: "00-abc-def-01", "X-Correlation-Id": "c-1", "Nats-Msg-Id": e.id }));
    expect(row).toMatchObject({ valid: true, eventId: e.id, type: e.type, source: e.source, entity: userId, stream: "USERS", streamSeq: 7, data: e.data });
    expect(row.time).toEqual(new Date(e.time));
    expect(row).toMatchObject({ traceparent: "00-abc-def-01", correlationId: "c-1" });
    expect(row.error).toBeUndefined();
  });

  it("keeps an event whose data fails validation, flagged with the reason and what could be read", () => {
    const e = { ...registered(), data: { userId: "nope" } };
    const row = toEventRow(msg(e));
    expect(row).toMatchObject({ valid: false, eventId: e.id, type: e.type, entity: userId, data: { userId: "nope" } });
    expect(row.error).toMatch(/invalid io.orderflow.user.registered.v1 data: userId/);
  });

  it("stores a user id entity lower-cased, however its publisher spelled it; other entities as sent", () => {
    const e = registered();
    expect(toEventRow(msg({ ...e, subject: userId.toUpperCase() }))).toMatchObject({ entity: userId });
    expect(toEventRow(msg({ ...e, type: "x.unknown.v1", subject: userId.toUpperCase() }))).toMatchObject({ valid: false, entity: userId });
    expect(toEventRow(msg({ ...e, type: "x.unknown.v1", subject: "User-Service/Pod-1" }))).toMatchObject({ entity: "User-Service/Pod-1" });
  });

  it("takes an invalid event's time only when it is RFC 3339, the stream's time otherwise", () => {
    const e = registered();
    // `new Date("12")` is December 2001, in the server's zone: such an event sorted years away.
    for (const time of ["12", "Tue, 01 Dec 2026 10:00:00", "2026-12-01", "2026-12-01T10:00:00"]) {
      expect(toEventRow(msg({ ...e, type: "x.unknown.v1", time })), time).toMatchObject({ valid: false, time: new Date("2026-01-02T03:04:05.678Z") });
    }
    expect(toEventRow(msg({ ...e, type: "x.unknown.v1", time: "2026-12-01t10:00:00.5+01:00" }))).toMatchObject({ time: new Date("2026-12-01T09:00:00.500Z") });
  });

  it("keeps unknown types, broken envelopes and non-JSON bodies", () => {
    const unknown = toEventRow(msg({ ...registered(), type: "io.orderflow.user.registered.v9" }));
    expect(unknown).toMatchObject({ valid: false, type: "io.orderflow.user.registered.v9" });
    expect(unknown.error).toMatch(/unknown event type/);
    const broken = toEventRow(msg({ hello: "world" }));
    expect(broken).toMatchObject({ valid: false, eventId: null, type: null, data: { hello: "world" } });
    expect(broken.time).toEqual(new Date("2026-01-02T03:04:05.678Z"));
    const junk = toEventRow(msg("{not json"));
    expect(junk).toMatchObject({ valid: false, error: "message body is not valid JSON", raw: "{not json" });
  });

  it("keeps a body nested deeper than it stores as JSON as text, flagged, with the envelope fields it can read", () => {
    const e = registered();
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
    const body = JSON.stringify({ ...e, data: "DEEP" }).replace('"DEEP"', deep(5000));
    const row = toEventRow(msg(body));
    expect(row).toMatchObject({ valid: false, eventId: e.id, type: e.type, entity: userId, data: null, raw: body });
    expect(row.error).toMatch(/deeper than 200 levels/);
    // At the limit it is still JSON: an invalid event, its data kept as sent.
    const atLimit = JSON.parse(deep(MAX_JSON_DEPTH - 1)) as unknown;
    expect(toEventRow(msg({ ...e, data: atLimit }))).toMatchObject({ valid: false, data: atLimit, raw: undefined });
  });

  it("keeps a body over 64 KiB as its first 64 KiB of text, flagged, with the envelope fields", () => {
    const e = { ...registered(), data: { blob: "x".repeat(MAX_STORED_BODY) } };
    const row = toEventRow(msg(e));
    expect(row).toMatchObject({ valid: false, eventId: e.id, type: e.type, data: null, error: expect.stringMatching(/over the 64 KiB the log stores/) });
    expect(row.raw).toHaveLength(64 * 1024);
  });

  it("keeps where a message it could not read is, storable, and still refusable after", () => {
    const row = unreadableRow({ ...msg("{}"), subject: `users.${"x".repeat(3000)}\u0000` }, "boom");
    expect(row).toMatchObject({ stream: "USERS", streamSeq: 7, valid: false, data: null, error: expect.stringMatching(/could not read this message \(boom\)/) });
    expect(row.subject).toHaveLength(512);
    expect(refusedRow(row, "22023: refused")).toMatchObject({ error: expect.stringMatching(/refused to store/) });
  });

  it("cuts the indexed fields to 512 characters as the HTTP filters count them (an emoji is one), and flags the row", () => {
    const e = registered();
    const long = toEventRow({ ...msg({ ...e, source: `/${"s".repeat(600)}`, subject: "é".repeat(2000) }), subject: `users.${"x".repeat(3000)}` });
    expect(long).toMatchObject({ valid: false, error: expect.stringMatching(/over 512 characters/) });
    expect([long.subject.length, long.source!.length, long.entity!.length]).toEqual([512, 512, 512]);
    // Counted in code points, as zod's max (the filters') counts: a pair is one, never cut apart.
    const emoji = toEventRow(msg({ ...e, source: `${"a".repeat(511)}🚀🚀` }));
    expect(emoji.source).toBe(`${"a".repeat(511)}🚀`);
    expect(toEventRow(msg({ ...e, source: "🚀".repeat(512) }))).toMatchObject({ valid: true, source: "🚀".repeat(512) });
    expect(toEventRow(msg({ ...e, source: "a".repeat(512) }))).toMatchObject({ valid: true });
    // What is kept of a refused row is cut the same way.
    const refused = refusedRow({ ...toEventRow(msg(e)), subject: `${"a".repeat(511)}🚀🚀` }, "22023: refused");
    expect(refused).toMatchObject({ subject: `${"a".repeat(511)}🚀`, valid: false, data: null });
  });

  it("replaces what Postgres cannot store and flags the row, so ingestion never stalls on it", () => {
    const e = registered();
    const nul = toEventRow(msg({ ...e, source: "/a\ud800", data: { ...e.data, name: "a\u0000b" } }, { "X-Odd": "\ud83d" }));
    expect(nul).toMatchObject({ valid: false, source: "/a\uFFFD", data: { name: "a\uFFFDb" }, headers: { "X-Odd": "\uFFFD" } });
    expect(nul.error).toMatch(/cannot store/);
    // Keys too, in whatever JSON a broken envelope carries.
    expect(toEventRow(msg({ hello: { ["k\u0000"]: ["\udc00"] } }))).toMatchObject({ valid: false, data: { hello: { ["k\uFFFD"]: ["\uFFFD"] } } });
    expect(toEventRow(msg("raw\u0000body"))).toMatchObject({ valid: false, raw: "raw\uFFFDbody" });
    const ancient = toEventRow(msg({ ...e, time: "0000-01-01T00:00:00Z" }));
    expect(ancient).toMatchObject({ valid: false, time: new Date("2026-01-02T03:04:05.678Z") });
    // Stored right but read back as 1950 by the driver: the stream's time too, flagged.
    const twoDigitYear = toEventRow(msg({ ...e, time: "0050-06-15T00:00:00Z" }));
    expect(twoDigitYear).toMatchObject({ valid: false, time: new Date("2026-01-02T03:04:05.678Z") });
    // A surrogate pair is a character like any other.
    expect(toEventRow(msg({ ...e, data: { ...e.data, name: "Ada 🚀" } }))).toMatchObject({ valid: true, data: { name: "Ada 🚀" } });
  });
});

describe("the streams the log ingests", () => {
  // Its consumers filter each stream on one subject pattern (nats-server 2.9 takes one filter):
  // a second pattern would be missing from the log, so the ingester refuses to start on one.
  it("each have exactly one subject pattern in the catalog", () => {
    for (const [name, stream] of Object.entries(streamCatalog)) expect(stream.subjects, name).toHaveLength(1);
  });
});
