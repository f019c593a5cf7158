import { and, desc, eq, lt, or, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import type { Cursor } from "../http/cursor.js";

/**
 * Keyset pagination, newest first: rows strictly after `cursor` in (createdAt desc, id desc)
 * order. Stable under concurrent inserts, unlike OFFSET, and served by a (created_at, id) index.
 * @example db.select().from(t).where(and(filter, after)).orderBy(...orderBy).limit(limit + 1)
 */
export function newestFirst(createdAt: PgColumn, id: PgColumn, cursor: Cursor | undefined): { after: SQL | undefined; orderBy: SQL[] } {
  return {
    after: cursor ? or(lt(createdAt, cursor.createdAt), and(eq(createdAt, cursor.createdAt), lt(id, cursor.id))) : undefined,
    orderBy: [desc(createdAt), desc(id)],
  };
}
