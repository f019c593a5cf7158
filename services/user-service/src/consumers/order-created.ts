import { eq, sql } from "drizzle-orm";
import { PermanentError, type EventHandlers } from "@orderflow/shared";
import { users } from "../db/schema.js";

/**
 * Keeps `orderCount` in step with orders.created. Runs inside the consumer's transaction with
 * the inbox insert, so a redelivered event never counts twice.
 */
export const orderCreatedHandlers: EventHandlers = {
  "orders.created": async (tx, event) => {
    const updated = await tx
      .update(users)
      .set({ orderCount: sql`${users.orderCount} + 1` })
      .where(eq(users.id, event.data.userId))
      .returning({ id: users.id });
    if (updated.length === 0) {
      // Orders only exist for users this service registered; retrying cannot make one appear.
      throw new PermanentError(`order ${event.data.orderId} belongs to unknown user ${event.data.userId}`);
    }
  },
};
