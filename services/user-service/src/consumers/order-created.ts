import { PermanentError, jsonRows, prepared, withBatchHandlers, type CloudEvent, type OrderCreated, type Tx } from "@orderflow/shared";

/** Adds each user's number of new orders to its count, in one fixed statement for any batch. */
const COUNT_ORDERS = `with counts as (
  select user_id, count(*)::int as orders from json_to_recordset($1::text::json) as r(user_id uuid) group by user_id
)
update users u set order_count = u.order_count + c.orders from counts c where u.id = c.user_id
returning u.id`;

/**
 * Keeps `orderCount` in step with orders.created. Runs inside the consumer's transaction with
 * the inbox insert, so a redelivered event never counts twice.
 */
async function countOrders(tx: Tx, events: CloudEvent<OrderCreated>[]): Promise<void> {
  const updated = await prepared<{ id: string }>(tx, COUNT_ORDERS, [jsonRows(events.map((e) => ({ user_id: e.data.userId })))]);
  if (updated.length < new Set(events.map((e) => e.data.userId)).size) {
    // Orders only exist for users this service registered; retrying cannot make one appear.
    // In a batch this sends every event back one at a time, so only the orphan is dead-lettered.
    const known = new Set(updated.map((u) => u.id));
    const orphan = events.find((e) => !known.has(e.data.userId))!;
    throw new PermanentError(`order ${orphan.data.orderId} belongs to unknown user ${orphan.data.userId}`);
  }
}

export const orderCreatedHandlers = withBatchHandlers(
  { "orders.created": (tx, event) => countOrders(tx, [event]) },
  { "orders.created": countOrders },
);
