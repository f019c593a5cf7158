import { OUTBOX_COLUMNS, statementHandler, traceHeaders, uuidv7, type EventHandlers } from "@orderflow/shared";
import { welcomeCustomer } from "../orders/orders.domain.js";

/**
 * Records the customer, creates the welcome order and queues its orders.created, as one
 * statement for any number of registrations (with the inbox insert, when the runner batches).
 * The partial unique index orders_one_welcome_per_user makes a second welcome order impossible
 * even for a re-published registration with a new event id, or the same user twice in one
 * batch: that row conflicts and is skipped, and no event is queued for it. The orders.created
 * continues the registration's trace.
 */
const welcome = statementHandler<"users.registered">({
  columns: `user_id uuid, email text, name text, registered_at timestamptz,
    order_id uuid, status text, source text, items jsonb, total_cents bigint, order_created_at timestamptz,
    order_event_id uuid, order_payload text, order_headers jsonb`,
  row(event, context) {
    const now = new Date();
    const { customer, order, event: created } = welcomeCustomer(event.data, { orderId: uuidv7(now.getTime()), now });
    return {
      user_id: customer.userId,
      email: customer.email,
      name: customer.name,
      registered_at: customer.registeredAt,
      order_id: order.id,
      status: order.status,
      source: order.source,
      items: order.items,
      total_cents: order.totalCents,
      order_created_at: order.createdAt,
      order_event_id: created.id,
      order_payload: JSON.stringify(created),
      order_headers: traceHeaders(context.traceparent),
    };
  },
  apply: `, customers_added as (
  insert into customers (user_id, email, name, registered_at)
  select user_id, email, name, registered_at from applied order by n
  on conflict do nothing
), orders_added as (
  insert into orders (id, user_id, status, source, items, total_cents, created_at)
  select order_id, user_id, status, source, items, total_cents, order_created_at from applied order by n
  on conflict do nothing
  returning id
), queued as (
  insert into outbox (${OUTBOX_COLUMNS})
  select a.order_event_id, 'orders.created', a.order_payload, a.order_headers
  from applied a join orders_added o on o.id = a.order_id order by a.n
  returning event_id
)`,
  queues: (r) => ({ eventId: r.order_event_id as string, subject: "orders.created", payload: r.order_payload as string, headers: r.order_headers as Record<string, string> }),
});

export const userRegisteredHandlers: EventHandlers = { "users.registered": welcome };
