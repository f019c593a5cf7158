import { decodeEvent, isStorableTime, toStorableText, type StreamName } from "@orderflow/shared";
import type { NewEventRow } from "../db/schema.js";

/** A stored JetStream message, independent of the client library. */
export interface RawMessage {
  stream: StreamName;
  streamSeq: number;
  /** When JetStream stored it. */
  streamTime: Date;
  /** Subject without the namespace prefix. */
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
}

const MAX_RAW = 64 * 1024;
/** Largest message body whose JSON the log stores as data; a larger one is kept cut, as text. */
export const MAX_STORED_BODY = 64 * 1024;

/**
 * Deepest nesting of a body's JSON the log stores as JSON. JSON.parse takes any depth, but
 * copying (below), JSON.stringify and Postgres's jsonb parser recurse: a 10 KB body of 5,000
 * nested arrays overflowed the stack and, redelivered for ever, took the log down on every start.
 */
export const MAX_JSON_DEPTH = 200;

/** Whether `v` nests arrays or objects deeper than `max` levels (without recursing). */
export function nestedDeeperThan(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    if (!x || typeof x !== "object") continue;
    if (depth >= max) return true;
    for (const y of Array.isArray(x) ? x : Object.values(x)) if (y && typeof y === "object") stack.push([y, depth + 1]);
  }
  return false;
}
const str = (v: unknown, max = 500) => (typeof v === "string" && v.length > 0 ? v.slice(0, max) : null);
const header = (h: Record<string, string>, test: (lower: string) => boolean) => {
  for (const [k, v] of Object.entries(h)) if (test(k.toLowerCase())) return v;
  return null;
};

const UNSTORABLE_NOTE = "holds what Postgres cannot store (a NUL character, an unpaired surrogate or a time outside the years 100–9999); shown with U+FFFD in their place and the stream's time";

/**
 * Characters kept of the fields the log indexes (subject, id, type, source, entity): a btree
 * entry holds at most 2,704 bytes, and 512 characters are at most 2,048 bytes of UTF-8. A
 * longer one would make Postgres refuse the whole batch's insert.
 */
export const MAX_INDEXED_CHARS = 512;
const CUT_NOTE = `has a subject, id, type, source or entity over ${MAX_INDEXED_CHARS} characters; shown cut to that length`;

/** The first `max` characters, or one fewer: half of a surrogate pair would be unstorable again. */
const cutAt = (s: string, max: number) => s.slice(0, /[\uD800-\uDBFF]/.test(s[max - 1] ?? "") ? max - 1 : max);

/**
 * The first MAX_INDEXED_CHARS characters counted as the HTTP filters count them (code points,
 * zod's and JSON Schema's maxLength), so any value a filter takes can match a stored one; an
 * emoji is one character there and two UTF-16 units here. Still at most 2,048 bytes of UTF-8.
 */
function cutIndexed(s: string): string | undefined {
  if (s.length <= MAX_INDEXED_CHARS) return undefined; // fewer units, so fewer code points
  const points = Array.from(s);
  return points.length <= MAX_INDEXED_CHARS ? undefined : points.slice(0, MAX_INDEXED_CHARS).join("");
}

/** A uuid in any case: a user id, the same id however it is spelled (ingest, filters, /events/{id}). */
export const UUID_SHAPED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The entity a CloudEvents subject names. A user id is a uuid, the same in any case (every other
 * endpoint takes it so), and is stored lower-cased, as our services send it: an upper-case one
 * from another publisher must be found by the same `entity` filter as the rest of that history.
 */
export const entityOf = (subject: string | null | undefined) => (typeof subject === "string" && UUID_SHAPED.test(subject) ? subject.toLowerCase() : subject);

/** RFC 3339 with a zone, as CloudEvents requires; `new Date` would read "12" as December 2001, in the server's zone. */
const isRfc3339 = (t: string) => /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(t);

/** The row with every string (and JSON key) storable; `changed` says whether anything had to go. */
function storable(row: NewEventRow): { row: NewEventRow; changed: boolean; cut: boolean } {
  let changed = false;
  let cut = false;
  const text = (s: string) => {
    const t = toStorableText(s);
    if (t !== s) changed = true;
    return t;
  };
  const indexed = <T extends string | null | undefined>(s: T): T => {
    const shorter = typeof s === "string" ? cutIndexed(s) : undefined;
    if (shorter === undefined) return s;
    cut = true;
    return shorter as T;
  };
  const json = (v: unknown): unknown => {
    if (typeof v === "string") return text(v);
    if (Array.isArray(v)) return v.map(json);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [text(k), json(x)]));
    return v;
  };
  const maybe = (s: string | null | undefined) => (typeof s === "string" ? text(s) : s);
  const time = isStorableTime(row.time.getTime()) ? row.time : row.streamTime;
  if (time !== row.time) changed = true;
  const out = {
    ...row,
    subject: indexed(text(row.subject)),
    headers: json(row.headers) as Record<string, string>,
    traceparent: maybe(row.traceparent),
    correlationId: maybe(row.correlationId),
    eventId: indexed(maybe(row.eventId)),
    type: indexed(maybe(row.type)),
    source: indexed(maybe(row.source)),
    entity: indexed(maybe(row.entity)),
    time,
    data: json(row.data),
    raw: maybe(row.raw),
    error: maybe(row.error),
  };
  return { row: out, changed, cut };
}

/**
 * Turns a message into the row the log stores. Never throws, and the row is always one Postgres
 * takes: an event that fails validation is kept with `valid: false` and the reason, and with
 * whatever envelope fields could be read, because the log must show what was actually published;
 * one holding what Postgres cannot store is kept with that replaced and `valid: false` (a row the
 * database refused would stop the stream's ingestion). Pure, so it is tested without I/O.
 */
export function toEventRow(m: RawMessage): NewEventRow {
  const { row, changed, cut } = storable(readEventRow(m));
  if (!changed && !cut) return row;
  const notes = [row.error, changed ? UNSTORABLE_NOTE : undefined, cut ? CUT_NOTE : undefined].filter(Boolean).join("; ");
  return { ...row, valid: false, error: notes };
}

const REFUSED = "Postgres refused to store this message";

/**
 * What the log keeps of a message whose row Postgres refused for its values anyway (a case
 * `toEventRow` does not foresee): its position, subject and the reason, so the stream's
 * ingestion goes on and the message is still found, and read again with `npm run replay` or
 * from the stream itself. Undefined for a row that is already this.
 */
export function refusedRow(row: NewEventRow, reason: string): NewEventRow | undefined {
  if (row.error?.startsWith(REFUSED)) return undefined;
  return positionRow(row, `${REFUSED} (${cutAt(toStorableText(reason), 500)}); the message is in the stream at this position`);
}

/** Where a message is and why nothing more of it is kept: always storable. */
function positionRow(m: Pick<NewEventRow, "stream" | "streamSeq" | "streamTime" | "subject">, error: string): NewEventRow {
  return {
    stream: m.stream,
    streamSeq: m.streamSeq,
    streamTime: m.streamTime,
    subject: ((s) => cutIndexed(s) ?? s)(toStorableText(m.subject)),
    headers: {},
    time: m.streamTime,
    data: null,
    valid: false,
    error,
  };
}

/**
 * What the log keeps of a message `toEventRow` failed on (it is meant never to: a case nobody
 * foresaw), so the stream's ingestion goes on and the message is found where it is.
 */
export function unreadableRow(m: RawMessage, reason: string): NewEventRow {
  return positionRow(m, `the event log could not read this message (${cutAt(toStorableText(reason), 500)}); it is in the stream at this position`);
}

function readEventRow(m: RawMessage): NewEventRow & { time: Date; streamTime: Date; subject: string } {
  const text = Buffer.from(m.data).toString("utf8");
  const base = {
    stream: m.stream,
    streamSeq: m.streamSeq,
    streamTime: m.streamTime,
    subject: m.subject,
    headers: m.headers,
    traceparent: header(m.headers, (k) => k === "traceparent"),
    correlationId: header(m.headers, (k) => k.includes("correlation")),
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ...base, time: m.streamTime, valid: false, error: "message body is not valid JSON", raw: text.slice(0, MAX_RAW) };
  }
  // Every event orderflow publishes is under 1 KiB; a body near the server's 1 MiB limit, stored
  // and served whole (a page asks for 200 events), would cost the log hundreds of MB of memory.
  if (m.data.length > MAX_STORED_BODY) {
    return { ...envelopeFields(json, m.streamTime), ...base, data: null, valid: false, error: `message body of ${m.data.length} bytes is over the ${MAX_STORED_BODY / 1024} KiB the log stores; its first ${MAX_RAW / 1024} KiB kept as text`, raw: text.slice(0, MAX_RAW) };
  }
  if (nestedDeeperThan(json, MAX_JSON_DEPTH)) {
    return { ...envelopeFields(json, m.streamTime), ...base, data: null, valid: false, error: `message body nests JSON deeper than ${MAX_JSON_DEPTH} levels; kept as text`, raw: text.slice(0, MAX_RAW) };
  }
  try {
    const { event } = decodeEvent(text);
    return {
      ...base,
      eventId: event.id,
      type: event.type,
      source: event.source,
      entity: entityOf(event.subject) ?? null,
      time: new Date(event.time),
      data: event.data as unknown,
      valid: true,
    };
  } catch (err) {
    const o = (json && typeof json === "object" && !Array.isArray(json) ? json : {}) as Record<string, unknown>;
    return {
      ...base,
      ...envelopeFields(json, m.streamTime),
      data: "data" in o ? (o.data as unknown) ?? null : json,
      valid: false,
      error: (err as Error).message.slice(0, 2000),
    };
  }
}

/** What can be read from a broken envelope, so the event still shows up in searches. */
function envelopeFields(json: unknown, streamTime: Date) {
  const o = (json && typeof json === "object" && !Array.isArray(json) ? json : {}) as Record<string, unknown>;
  const time = typeof o.time === "string" && isRfc3339(o.time) ? new Date(o.time) : undefined;
  return {
    eventId: str(o.id, 200),
    type: str(o.type),
    source: str(o.source),
    entity: entityOf(str(o.subject)),
    time: time && !Number.isNaN(time.getTime()) ? time : streamTime,
  };
}
