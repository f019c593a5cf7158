import { createRoute, z } from "@hono/zod-openapi";
import { createdResponse, idParams, jsonBody, noQuery, orderItemSchema, pageQuery, pageSchema, problemContent as problem, unavailableResponse, writeHeaders } from "@orderflow/shared";

// The item schema comes from the event catalog, so the API and orders.created cannot drift apart.
const item = orderItemSchema;

export const orderSchema = z
  .object({
    id: z.uuid(),
    userId: z.uuid(),
    status: z.enum(["created"]),
    source: z.enum(["registration", "api"]).openapi({ description: "`registration`: the welcome order; `api`: placed with POST /orders" }),
    items: z.array(item),
    totalCents: z.number().int(),
    createdAt: z.iso.datetime(),
  })
  .openapi("Order");

// Strict, unlike the event schemas (which must let consumers read events with fields added
// later): an unknown field in a request is a 400, not silently dropped.
export const placeOrderBody = z
  .strictObject({
    userId: z.uuid(),
    items: z.array(item.strict()).min(1).max(100),
  })
  .openapi("PlaceOrder");

export const placeOrderRoute = createRoute({
  method: "post",
  path: "/orders",
  summary: "Place an order",
  middleware: [jsonBody()] as const,
  request: { headers: writeHeaders, body: { required: true, content: { "application/json": { schema: placeOrderBody } } } },
  responses: {
    201: createdResponse("Created; orders.created is published through the outbox", orderSchema),
    400: problem("Invalid fields (or Idempotency-Key), listed in `errors`"),
    413: problem("Body over 16 KiB"),
    415: problem("Body is not JSON"),
    422: problem("The user is not (yet) known to the order service, or the Idempotency-Key was used with a different body"),
    503: unavailableResponse,
  },
});

export const getOrderRoute = createRoute({
  method: "get",
  path: "/orders/{id}",
  summary: "Get an order",
  request: { params: idParams, query: noQuery },
  responses: {
    200: { description: "The order", content: { "application/json": { schema: orderSchema } } },
    400: problem("id is not a UUID"),
    404: problem("No such order"),
    503: unavailableResponse,
  },
});

export const listOrdersRoute = createRoute({
  method: "get",
  path: "/orders",
  summary: "List orders, newest first, optionally for one user",
  request: { query: pageQuery.extend({ userId: z.uuid().optional() }) },
  responses: {
    200: { description: "A page of orders", content: { "application/json": { schema: pageSchema(orderSchema, "OrderPage") } } },
    400: problem("Invalid userId, limit, cursor or unknown parameter"),
    503: unavailableResponse,
  },
});
