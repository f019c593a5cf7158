import { OUTBOX_COLUMNS, jsonRows, outboxMessage, outboxRow, prepared, queueAfterCommit, uuidv7, withBatchHandlers, type CloudEvent, type Tx, type UserRegistered } from "@orderflow/shared";
import { welcomeCustomer } from "../orders/orders.domain.js";

/**
 * One statement for any number of registrations (a fixed text, prepared once per connection):
 * record the customers, create their welcome orders, and queue orders.created for each order
 * actually inserted. The partial unique index orders_one_welcome_per_user makes a second welcome
 * order impossible even for a re-published registration with a new event id, or the same user
 * twice in one batch: that row conflicts and is skipped, as it would be one event at a time.
 */
const WELCOME = `with input as (
  select * from json_to_recordset($1::text::json) as r(
    n int, user_id uuid, email text, name text, registered_at timestamptz,
    order_id uuid, status text, source text, items jsonb, total_cents bigint, order_created_at timestamptz,
    event_id uuid, subject text, payload text, headers jsonb, created_at timestamptz)
), customers_added as (
  insert into customers (user_id, email, name, registered_at)
  select user_id, email, name, registered_at from input order by n
  on conflict do nothing
), orders_added as (
  insert into orders (id, user_id, status, source, items, total_cents, created_at)
  select order_id, user_id, status, source, items, total_cents, order_created_at from input order by n
  on conflict do nothing
  returning id
)
insert into outbox (${OUTBOX_COLUMNS})
select i.event_id, i.subject, i.payload, i.headers, i.created_at from input i join orders_added o on o.id = i.order_id order by i.n
returning event_id`;

/** Runs in the consumer's transaction, after the inbox insert that makes a redelivery a no-op. */
async function welcome(tx: Tx, events: CloudEvent<UserRegistered>[]): Promise<void> {
  const now = new Date();
  const rows = events.map((event) => {
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
      ...outboxRow("orders.created", created),
    };
  });
  const queued = new Set((await prepared<{ event_id: string }>(tx, WELCOME, [jsonRows(rows)])).map((r) => r.event_id));
  // For the relay to publish as soon as the consumer's transaction commits.
  queueAfterCommit(tx, rows.filter((r) => queued.has(r.event_id)).map(outboxMessage));
}

export const userRegisteredHandlers = withBatchHandlers(
  { "users.registered": (tx, event) => welcome(tx, [event]) },
  { "users.registered": welcome },
);
