import { HttpProblemError } from "../errors/index.js";
import { parseCanonicalTime } from "../db/time.js";

/** Keyset position in a newest-first listing: the last item's time and id. */
export interface Cursor {
  createdAt: Date;
  id: string;
}

/**
 * Opaque to clients: base64url of `<listing>|<time>|<id>`. The listing's name ties a cursor to
 * the listing that issued it, so one from `/users` is refused by `/orders` instead of starting
 * that listing somewhere arbitrary.
 */
export function encodeCursor(listing: string, c: Cursor): string {
  return Buffer.from(`${listing}|${c.createdAt.toISOString()}|${c.id}`, "utf8").toString("base64url");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The base64url text, if `raw` is exactly what `toString("base64url")` makes of it: Node's
 * decoder skips characters it does not know, so `<cursor>!!!` would otherwise pass as the cursor.
 */
export function decodeOpaque(raw: string): string | undefined {
  const bytes = Buffer.from(raw, "base64url");
  return bytes.toString("base64url") === raw ? bytes.toString("utf8") : undefined;
}

/** Throws a 400 problem for anything that is not a cursor this listing issued. */
export function decodeCursor(listing: string, raw: string): Cursor {
  const parts = decodeOpaque(raw)?.split("|") ?? [];
  // `<time>|<id>`, as cursors were before they named their listing: a client paging through a
  // rolling deploy holds one. Taken for any listing, as it was then.
  if (parts.length === 2) parts.unshift(listing);
  const [name, time, id, extra] = parts;
  const createdAt = parseCanonicalTime(time);
  if (name !== listing || extra !== undefined || !id || !UUID.test(id) || !createdAt) {
    throw new HttpProblemError(400, "Bad Request", "cursor is not valid; pass the nextCursor of a previous page", {
      errors: [{ in: "query", pointer: "/cursor", detail: "is not a valid cursor" }],
    });
  }
  return { createdAt, id };
}

/** Builds a page from `limit + 1` rows: the extra row only says whether there is a next page. */
export function toPage<T extends { createdAt: Date; id: string }, O>(listing: string, rows: T[], limit: number, present: (row: T) => O) {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items: items.map(present),
    nextCursor: rows.length > limit && last ? encodeCursor(listing, last) : null,
  };
}
