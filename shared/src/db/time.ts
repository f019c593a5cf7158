import { z } from "zod";

// Postgres timestamps hold the years 1–294276, but its text input takes 4-digit years only, and
// a JavaScript Date reaches ±275760: a time after 9999-12-31 (UTC) that a client sends would be a
// 22008/22009 error, a 500. And the years 1–99 are stored right but read back wrong: the driver
// hands "0050-06-15 00:00:00+00" to Date, whose legacy parser reads a two-digit year (1950), so a
// stored event time moved and the event log's keyset paging looped between two rows for ever.
// One range, 0100–9999, for every place a client or a publisher names a time.
const MIN = Date.parse("0100-01-01T00:00:00.000Z");
const MAX = Date.parse("9999-12-31T23:59:59.999Z");

/** The instant is in the years 0100–9999 (UTC), which Postgres and the driver read back the same. */
export const isStorableTime = (ms: number): boolean => ms >= MIN && ms <= MAX;

const CANONICAL = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** A time as `Date.toISOString()` writes it, in the storable range; otherwise undefined. */
export function parseCanonicalTime(text: string | undefined): Date | undefined {
  if (!text || !CANONICAL.test(text)) return undefined;
  const d = new Date(text);
  return isStorableTime(d.getTime()) && d.toISOString() === text ? d : undefined;
}

/** An ISO date-time with an offset, in the storable range: for event fields a consumer stores. */
export const storableDateTime = () => z.iso.datetime({ offset: true, abort: true }).refine((t) => isStorableTime(Date.parse(t)), "must be in the years 0100–9999 (UTC)");
