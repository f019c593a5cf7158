import { sql } from "drizzle-orm";
import { index, integer, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

// The outbox and inbox are shared mechanisms; each service owns its copy of the tables.
export { outbox, inbox, idempotencyKeys } from "@orderflow/shared/tables";

export const users = pgTable(
  "users",
  {
    id: uuid("id").primaryKey(),
    /** As the user typed it (trimmed); uniqueness ignores case through the index below. */
    email: text("email").notNull(),
    name: text("name").notNull(),
    /** Projection of orders.created events; updated by the consumer, never by the API. */
    orderCount: integer("order_count").notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
  },
  (t) => [
    uniqueIndex("users_email_lower_key").on(sql`lower(${t.email})`),
    index("users_created_at_id_idx").on(t.createdAt.desc(), t.id.desc()),
  ],
);

export type UserRow = typeof users.$inferSelect;
