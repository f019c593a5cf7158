import { createEvent, type CloudEvent, type OrderCreated, type OrderItem, type UserRegistered } from "@orderflow/shared";
import type { CustomerRow, OrderRow } from "../db/schema.js";

export const SOURCE = "/orderflow/order-service";

export const totalCents = (items: readonly OrderItem[]) => items.reduce((sum, i) => sum + i.quantity * i.unitPriceCents, 0);

function orderCreated(order: OrderRow): CloudEvent<OrderCreated> {
  return createEvent({
    name: "orders.created",
    source: SOURCE,
    // The CloudEvents subject is the user, so one query by entity shows a user's whole history.
    subject: order.userId,
    time: order.createdAt,
    data: {
      orderId: order.id,
      userId: order.userId,
      status: order.status,
      source: order.source,
      items: order.items,
      totalCents: order.totalCents,
      createdAt: order.createdAt.toISOString(),
    },
  });
}

/** A registration makes the user a customer with one empty welcome order. Pure. */
export function welcomeCustomer(data: UserRegistered, { orderId, now }: { orderId: string; now: Date }) {
  // NFC, as user-service stores names: a replayed event from before it did, or another producer's,
  // would otherwise bring back a second form of the same name.
  const customer: CustomerRow = { userId: data.userId, email: data.email, name: data.name.normalize("NFC"), registeredAt: new Date(data.registeredAt) };
  const order: OrderRow = { id: orderId, userId: data.userId, status: "created", source: "registration", items: [], totalCents: 0, createdAt: now };
  return { customer, order, event: orderCreated(order) };
}

/** An order placed through the API. Pure. */
export function placeOrder(input: { userId: string; items: OrderItem[] }, { orderId, now }: { orderId: string; now: Date }) {
  const order: OrderRow = {
    id: orderId,
    userId: input.userId,
    status: "created",
    source: "api",
    items: input.items,
    totalCents: totalCents(input.items),
    createdAt: now,
  };
  return { order, event: orderCreated(order) };
}

export function presentOrder(o: OrderRow) {
  return {
    id: o.id,
    userId: o.userId,
    status: o.status,
    source: o.source,
    items: o.items,
    totalCents: o.totalCents,
    createdAt: o.createdAt.toISOString(),
  };
}
