import { inArray, sql } from "drizzle-orm";
import { PermanentError, withBatchHandlers, type CloudEvent, type OrderCreated, type Tx } from "@orderflow/shared";
import { users } from "../db/schema.js";

/**
 * Keeps `orderCount` in step with orders.created: one UPDATE per distinct count (almost always
 * one, each user +1) for any number of events. Runs inside the consumer's transaction with the
 * inbox insert, so a redelivered event never counts twice.
 */
async function countOrders(tx: Tx, events: CloudEvent<OrderCreated>[]): Promise<void> {
  const perUser = new Map<string, number>();
  for (const e of events) perUser.set(e.data.userId, (perUser.get(e.data.userId) ?? 0) + 1);
  const byCount = new Map<number, string[]>();
  for (const [userId, n] of perUser) byCount.set(n, [...(byCount.get(n) ?? []), userId]);
  for (const [n, ids] of byCount) {
    const updated = await tx
      .update(users)
      .set({ orderCount: sql`${users.orderCount} + ${n}` })
      .where(inArray(users.id, ids))
      .returning({ id: users.id });
    if (updated.length < ids.length) {
      // Orders only exist for users this service registered; retrying cannot make one appear.
      // In a batch this sends every event back one at a time, so only the orphan is dead-lettered.
      const known = new Set(updated.map((u) => u.id));
      const orphan = events.find((e) => !known.has(e.data.userId) && ids.includes(e.data.userId))!;
      throw new PermanentError(`order ${orphan.data.orderId} belongs to unknown user ${orphan.data.userId}`);
    }
  }
}

export const orderCreatedHandlers = withBatchHandlers(
  { "orders.created": (tx, event) => countOrders(tx, [event]) },
  { "orders.created": countOrders },
);
