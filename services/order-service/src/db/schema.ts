import { sql } from "drizzle-orm";
import { bigint, index, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import type { OrderItem } from "@orderflow/shared";

export { outbox, inbox, idempotencyKeys } from "@orderflow/shared/tables";

/** Users as this service learned of them from users.registered; it never reads the user database. */
export const customers = pgTable("customers", {
  userId: uuid("user_id").primaryKey(),
  email: text("email").notNull(),
  name: text("name").notNull(),
  registeredAt: timestamp("registered_at", { withTimezone: true }).notNull(),
});

export const orders = pgTable(
  "orders",
  {
    id: uuid("id").primaryKey(),
    userId: uuid("user_id")
      .notNull()
      .references(() => customers.userId),
    status: text("status", { enum: ["created"] }).notNull(),
    source: text("source", { enum: ["registration", "api"] }).notNull(),
    items: jsonb("items").$type<OrderItem[]>().notNull(),
    // Up to 100 items × 1000 × 1e9 cents exceeds int4; int8 holds it exactly as a JS number.
    totalCents: bigint("total_cents", { mode: "number" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
  },
  (t) => [
    // At most one welcome order per user, whatever happens upstream (replays, new event ids).
    uniqueIndex("orders_one_welcome_per_user").on(t.userId).where(sql`${t.source} = 'registration'`),
    index("orders_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
    index("orders_created_idx").on(t.createdAt.desc(), t.id.desc()),
  ],
);

export type OrderRow = typeof orders.$inferSelect;
export type CustomerRow = typeof customers.$inferSelect;
