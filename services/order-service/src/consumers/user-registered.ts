import { enqueueEvents, uuidv7, type EventHandlers } from "@orderflow/shared";
import { customers, orders } from "../db/schema.js";
import { welcomeCustomer } from "../orders/orders.domain.js";

/**
 * Records the customer and creates its welcome order, with the orders.created event in the
 * same transaction. The inbox makes a redelivered event a no-op; the partial unique index makes
 * a second welcome order impossible even for a re-published registration with a new event id.
 */
export const userRegisteredHandlers: EventHandlers = {
  "users.registered": async (tx, event) => {
    const now = new Date();
    const { customer, order, event: created } = welcomeCustomer(event.data, { orderId: uuidv7(now.getTime()), now });
    await tx.insert(customers).values(customer).onConflictDoNothing();
    const inserted = await tx
      .insert(orders)
      .values(order)
      .onConflictDoNothing() // only orders_one_welcome_per_user can conflict: the id is fresh
      .returning({ id: orders.id });
    if (inserted.length > 0) await enqueueEvents(tx, [{ subject: "orders.created", event: created }]);
  },
};
