import { PermanentError, statementHandler, type EventHandlers } from "@orderflow/shared";

/**
 * Keeps `orderCount` in step with orders.created: each user's count grows by its number of new
 * orders, in one statement for any batch (with the inbox insert, so a redelivered event never
 * counts twice). Orders only exist for users this service registered; an order for an unknown
 * user is not accepted, and alone it is dead-lettered: retrying cannot make the user appear.
 */
const countOrders = statementHandler<"orders.created">({
  columns: "user_id uuid",
  row: (event) => ({ user_id: event.data.userId }),
  // Both lookups of users must stay primary-key probes whatever the table's size. Prepared
  // statements keep the generic plan made in their first executions, when users was small: a
  // plain `exists`/join was then planned as a hash join over a sequential scan of users, and
  // kept that plan as the table grew (no autovacuum here, so no ANALYZE to replan it). The
  // OFFSET 0 keeps `exists` a per-row subplan (an index probe); the update finds its rows by
  // `= any(array(…))`, an index scan at every size given the sessions' SESSION_SETTINGS.
  accept: "exists (select 1 from users u where u.id = r.user_id offset 0)",
  reject: (event) => new PermanentError(`order ${event.data.orderId} belongs to unknown user ${event.data.userId}`),
  apply: `, counted as (
  update users u set order_count = u.order_count + c.orders
  from (select user_id, count(*)::int as orders from applied group by user_id) c
  where u.id = any(array(select user_id from applied)) and u.id = c.user_id
)`,
});

export const orderCreatedHandlers: EventHandlers = { "orders.created": countOrders };
