import { HttpProblemError } from "../errors/index.js";

/** Keyset position in a newest-first listing: the last item's time and id. */
export interface Cursor {
  createdAt: Date;
  id: string;
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(`${c.createdAt.toISOString()}|${c.id}`, "utf8").toString("base64url");
}

/** Throws a 400 problem for anything that is not a cursor this service issued. */
export function decodeCursor(raw: string): Cursor {
  const text = Buffer.from(raw, "base64url").toString("utf8");
  const [time, id, extra] = text.split("|");
  const createdAt = new Date(time ?? "");
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  if (extra !== undefined || !id || !uuid.test(id) || Number.isNaN(createdAt.getTime())) {
    throw new HttpProblemError(400, "Bad Request", "cursor is not valid; pass the nextCursor of a previous page", {
      errors: [{ in: "query", pointer: "/cursor", detail: "is not a valid cursor" }],
    });
  }
  return { createdAt, id };
}

/** Builds a page from `limit + 1` rows: the extra row only says whether there is a next page. */
export function toPage<T extends { createdAt: Date; id: string }, O>(rows: T[], limit: number, present: (row: T) => O) {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items: items.map(present),
    nextCursor: rows.length > limit && last ? encodeCursor(last) : null,
  };
}
