import { enqueueEvents, uuidv7, withBatchHandlers, type CloudEvent, type Tx, type UserRegistered } from "@orderflow/shared";
import { customers, orders } from "../db/schema.js";
import { welcomeCustomer } from "../orders/orders.domain.js";

/**
 * Records the customers and creates their welcome orders, with the orders.created events in
 * the same transaction: three multi-row statements for any number of registrations. The inbox
 * makes a redelivered event a no-op; the partial unique index makes a second welcome order
 * impossible even for a re-published registration with a new event id (or the same user twice
 * in one batch: the second row conflicts and is skipped, as it would be one event at a time).
 */
async function welcome(tx: Tx, events: CloudEvent<UserRegistered>[]): Promise<void> {
  const now = new Date();
  const made = events.map((event) => welcomeCustomer(event.data, { orderId: uuidv7(now.getTime()), now }));
  await tx.insert(customers).values(made.map((m) => m.customer)).onConflictDoNothing();
  const inserted = await tx
    .insert(orders)
    .values(made.map((m) => m.order))
    .onConflictDoNothing() // only orders_one_welcome_per_user can conflict: the ids are fresh
    .returning({ id: orders.id });
  const created = new Set(inserted.map((r) => r.id));
  await enqueueEvents(
    tx,
    made.filter((m) => created.has(m.order.id)).map((m) => ({ subject: "orders.created", event: m.event })),
  );
}

export const userRegisteredHandlers = withBatchHandlers(
  { "users.registered": (tx, event) => welcome(tx, [event]) },
  { "users.registered": welcome },
);
