import { and, eq } from "drizzle-orm";
import {
  documentedHeaders,
  NotFoundError,
  UnprocessableError,
  decodeCursor,
  enqueueEvents,
  idempotentWrite,
  newestFirst,
  pgErrorCode,
  readIdempotencyKey,
  TRACEPARENT,
  toPage,
  traceHeaders,
  uuidv7,
  type Db,
  type OutboxMessage,
  type ServiceApp,
} from "@orderflow/shared";
import { customers, orders } from "../db/schema.js";
import { placeOrder, presentOrder } from "./orders.domain.js";
import { getOrderRoute, listOrdersRoute, placeOrderRoute } from "./orders.routes.js";

export interface OrdersDeps {
  db: Db;
  published: (messages: OutboxMessage[]) => void;
}

const unknownUser = (userId: string) =>
  new UnprocessableError(`user ${userId} is not known to the order service (yet); users become known once their registration event arrives`, {
    errors: [{ in: "body", pointer: "/userId", detail: "is not a known user" }],
  });

export function registerOrderRoutes(app: ServiceApp, { db, published }: OrdersDeps) {
  app.openapi(documentedHeaders(app, placeOrderRoute), async (c) => {
    // One spelling of the user id (JSON may carry it in upper case): for the row, the event's
    // subject and data, and the Idempotency-Key's "same body" comparison.
    const sent = c.req.valid("json");
    const body = { ...sent, userId: sent.userId.toLowerCase() };
    const key = readIdempotencyKey(c);
    const now = new Date();
    const { order, event } = placeOrder(body, { orderId: uuidv7(now.getTime()), now });
    let result;
    try {
      result = await idempotentWrite(db, { scope: "POST /orders", key, request: body }, async (tx) => {
        const [known] = await tx.select({ id: customers.userId }).from(customers).where(eq(customers.userId, body.userId));
        if (!known) throw unknownUser(body.userId);
        await tx.insert(orders).values(order);
        await enqueueEvents(tx, [{ subject: "orders.created", event, headers: traceHeaders(c.req.header(TRACEPARENT)) }]);
        return { status: 201, body: presentOrder(order), headers: { location: `/orders/${order.id}` } };
      });
    } catch (err) {
      if (pgErrorCode(err) === "23503") throw unknownUser(body.userId); // foreign key: the customer vanished
      throw err;
    }
    published(result.queued);
    return c.json(result.body, 201, result.headers);
  });

  app.openapi(getOrderRoute, async (c) => {
    const { id } = c.req.valid("param");
    const [order] = await db.select().from(orders).where(eq(orders.id, id));
    if (!order) throw new NotFoundError(`no order with id ${id}`);
    return c.json(presentOrder(order), 200);
  });

  app.openapi(listOrdersRoute, async (c) => {
    const { limit, cursor, userId } = c.req.valid("query");
    const page = newestFirst(orders.createdAt, orders.id, cursor ? decodeCursor("orders", cursor) : undefined);
    const rows = await db
      .select()
      .from(orders)
      .where(and(userId ? eq(orders.userId, userId) : undefined, page.after))
      .orderBy(...page.orderBy)
      .limit(limit + 1);
    return c.json(toPage("orders", rows, limit, presentOrder), 200);
  });
}
