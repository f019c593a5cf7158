import { and, eq, gte, inArray, lt, or, sql, type SQL } from "drizzle-orm";
import { HttpProblemError, decodeOpaque, eventCatalog, isStorableTime, parseCanonicalTime, type EventName } from "@orderflow/shared";
import { events, type EventRow } from "../db/schema.js";
import { UUID_SHAPED } from "../ingest/ingest.domain.js";

/** Keyset position in the newest-first listing: the last item's time and log seq. */
export interface EventCursor {
  time: Date;
  seq: number;
}

export const encodeEventCursor = (c: EventCursor) => Buffer.from(`${c.time.toISOString()}|${c.seq}`, "utf8").toString("base64url");

const badQuery = (pointer: string, detail: string) =>
  new HttpProblemError(400, "Bad Request", `${pointer.slice(1)} ${detail}`, { errors: [{ in: "query", pointer, detail }] });

/** Throws a 400 problem for anything that is not a cursor this service issued. */
export function decodeEventCursor(raw: string): EventCursor {
  const [time, seq, extra] = decodeOpaque(raw)?.split("|") ?? [];
  const t = parseCanonicalTime(time);
  // 15 digits: a seq stays an exact JavaScript number.
  if (extra !== undefined || !seq || !/^\d{1,15}$/.test(seq) || !t) {
    throw badQuery("/cursor", "is not a valid cursor; pass the nextCursor of a previous page");
  }
  return { time: t, seq: Number(seq) };
}

/**
 * Accepts a CloudEvents type or a catalog name (`users.registered`) and returns the type. Own
 * keys only: `toString` or `constructor` are names of every object, not of an event.
 */
export const resolveType = (type: string) => (Object.hasOwn(eventCatalog, type) ? eventCatalog[type as EventName].type : type);


/**
 * The entity values a filter matches. Every other endpoint takes a user id in any case (Postgres
 * compares uuids, `/events/{id}` lower-cases), and ingest stores a uuid entity lower-cased
 * (`entityOf`; migration 0001 lower-cased the rows stored before): an upper-cased user id must find
 * the same history, not an empty page. The spelling given is matched too, which costs nothing.
 * Other entities (`service/instance`) are free text, matched exactly.
 */
export const entityVariants = (entity: string) => (UUID_SHAPED.test(entity) && entity !== entity.toLowerCase() ? [entity, entity.toLowerCase()] : [entity]);

export interface EventFilters {
  type?: string;
  subject?: string;
  source?: string;
  entity?: string;
  stream?: string;
  from?: string;
  to?: string;
}

/** The digits of an ISO time's fraction past the millisecond ("" for none). */
const subMillisecond = (iso: string) => /\.\d{3}(\d+)/.exec(iso)?.[1] ?? "";

/**
 * A from/to bound as the `time` column compares it. Stored times are whole milliseconds, so a
 * bound with a finer fraction is rounded up to the next one, which selects the same rows both as
 * "at or after" and as "before"; `new Date` would cut it down and take in the millisecond below.
 */
const timeBound = (iso: string) => {
  const d = new Date(iso);
  return /[1-9]/.test(subMillisecond(iso)) ? new Date(d.getTime() + 1) : d;
};

/** from < to, to the last digit written (rounded, two bounds inside one millisecond would tie). */
const isBefore = (from: string, to: string) => {
  const a = new Date(from).getTime();
  const b = new Date(to).getTime();
  if (a !== b) return a < b;
  const [x, y] = [subMillisecond(from), subMillisecond(to)];
  const width = Math.max(x.length, y.length);
  return x.padEnd(width, "0") < y.padEnd(width, "0");
};

export function eventConditions(f: EventFilters): SQL | undefined {
  if (f.from && f.to && !isBefore(f.from, f.to)) throw badQuery("/to", "must be after from");
  const from = f.from ? timeBound(f.from) : undefined;
  const to = f.to ? timeBound(f.to) : undefined;
  // Rounded up past 9999-12-31T23:59:59.999Z, a bound is a year Postgres cannot take: no stored
  // time is at or after it, and every stored time is before it.
  if (from && !isStorableTime(from.getTime())) return sql`false`;
  return and(
    f.type ? eq(events.type, resolveType(f.type)) : undefined,
    f.subject ? eq(events.subject, f.subject) : undefined,
    f.source ? eq(events.source, f.source) : undefined,
    f.entity ? inArray(events.entity, entityVariants(f.entity)) : undefined,
    f.stream ? eq(events.stream, f.stream) : undefined,
    from ? gte(events.time, from) : undefined,
    to && isStorableTime(to.getTime()) ? lt(events.time, to) : undefined,
  );
}

export const beforeCursor = (c: EventCursor) => or(lt(events.time, c.time), and(eq(events.time, c.time), lt(events.seq, c.seq)));

/** Matches a row against the live tail's filters, the same way `eventConditions` does in SQL. */
export const matchesRow = (f: Pick<EventFilters, "type" | "entity">) => {
  const type = f.type ? resolveType(f.type) : undefined;
  const entities = f.entity ? entityVariants(f.entity) : undefined;
  return (r: EventRow) => (!type || r.type === type) && (!entities || (r.entity !== null && entities.includes(r.entity)));
};

export function presentEvent(r: EventRow) {
  return {
    seq: r.seq,
    id: r.eventId,
    stream: r.stream,
    streamSeq: r.streamSeq,
    subject: r.subject,
    type: r.type,
    source: r.source,
    entity: r.entity,
    time: r.time.toISOString(),
    data: r.data ?? null,
    headers: r.headers,
    traceparent: r.traceparent,
    correlationId: r.correlationId,
    valid: r.valid,
    error: r.error,
    ...(r.raw !== null ? { raw: r.raw } : {}),
    storedAt: r.storedAt.toISOString(),
  };
}
export type PresentedEvent = ReturnType<typeof presentEvent>;
