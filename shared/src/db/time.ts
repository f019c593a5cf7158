// Postgres timestamps hold the years 1–294276, but its text input takes 4-digit years only, and
// a JavaScript Date reaches ±275760: a time outside 0001-01-01 … 9999-12-31 (UTC) that a client
// sends would be a 22008/22009 error, a 500. One range for every place a client names a time.
const MIN = Date.parse("0001-01-01T00:00:00.000Z");
const MAX = Date.parse("9999-12-31T23:59:59.999Z");

/** The instant is in the years 0001–9999 (UTC), which Postgres reads back the same. */
export const isStorableTime = (ms: number): boolean => ms >= MIN && ms <= MAX;

const CANONICAL = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** A time as `Date.toISOString()` writes it, in the storable range; otherwise undefined. */
export function parseCanonicalTime(text: string | undefined): Date | undefined {
  if (!text || !CANONICAL.test(text)) return undefined;
  const d = new Date(text);
  return isStorableTime(d.getTime()) && d.toISOString() === text ? d : undefined;
}
