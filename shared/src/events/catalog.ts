import { z } from "zod";
import { storableDateTime } from "../db/time.js";

/**
 * The single source of truth for what flows over NATS: streams, subjects, CloudEvent types
 * and the zod schema of each event's data. Publishers, consumers, docs and the event log
 * all read it from here.
 */
export const streamCatalog = {
  USERS: { subjects: ["users.>"], description: "Facts about users, published by user-service" },
  ORDERS: { subjects: ["orders.>"], description: "Facts about orders, published by order-service" },
  SYSTEM: { subjects: ["system.>"], description: "Lifecycle of service instances: started, ready, not ready, stopping" },
  DLQ: { subjects: ["dlq.>"], description: "Dead letters: messages a consumer gave up on, with the reason" },
} as const;

export type StreamName = keyof typeof streamCatalog;

const sku = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1–64 characters of A-Z, a-z, 0-9, '_' or '-'");

export const orderItemSchema = z.object({
  sku,
  quantity: z.number().int().min(1).max(1000),
  unitPriceCents: z.number().int().min(0).max(1_000_000_000),
});

export const userRegisteredV1 = z.object({
  userId: z.uuid(),
  email: z.string(),
  name: z.string(),
  registeredAt: storableDateTime(),
});

export const orderCreatedV1 = z.object({
  orderId: z.uuid(),
  userId: z.uuid(),
  status: z.enum(["created"]),
  source: z.enum(["registration", "api"]),
  items: z.array(orderItemSchema),
  totalCents: z.number().int().min(0),
  createdAt: storableDateTime(),
});

const serviceLifecycleV1 = z.object({
  service: z.string(),
  instance: z.string(),
  version: z.string(),
  /** For not_ready: the failing checks and why. */
  checks: z.record(z.string(), z.string()).optional(),
  reason: z.string().optional(),
});

export interface EventDefinition<S extends z.ZodType = z.ZodType> {
  /** Logical subject, before the namespace prefix. */
  subject: string;
  stream: StreamName;
  /** CloudEvents `type`; the trailing `.vN` is the schema version. */
  type: string;
  version: number;
  producer: string;
  description: string;
  /** What the CloudEvents `subject` attribute names: the entity the event is about. */
  entity: string;
  data: S;
}

const define = <S extends z.ZodType>(d: EventDefinition<S>) => d;

export const eventCatalog = {
  "users.registered": define({
    subject: "users.registered",
    stream: "USERS",
    type: "io.orderflow.user.registered.v1",
    version: 1,
    producer: "user-service",
    description: "A user registered; order-service answers with a welcome order.",
    entity: "the user's id",
    data: userRegisteredV1,
  }),
  "orders.created": define({
    subject: "orders.created",
    stream: "ORDERS",
    type: "io.orderflow.order.created.v1",
    version: 1,
    producer: "order-service",
    description: "An order was created (a welcome order or one placed through the API).",
    entity: "the id of the user who owns the order",
    data: orderCreatedV1,
  }),
  "system.service.started": define({
    subject: "system.service.started",
    stream: "SYSTEM",
    type: "io.orderflow.service.started.v1",
    version: 1,
    producer: "every service",
    description: "An instance finished starting (migrations applied; NATS, streams, outbox relay and consumers up), once per process; later changes of readiness are system.service.ready and not_ready.",
    entity: "service/instance",
    data: serviceLifecycleV1,
  }),
  "system.service.ready": define({
    subject: "system.service.ready",
    stream: "SYSTEM",
    type: "io.orderflow.service.ready.v1",
    version: 1,
    producer: "every service",
    description: "An instance became ready (database, NATS, streams and consumers up).",
    entity: "service/instance",
    data: serviceLifecycleV1,
  }),
  "system.service.not_ready": define({
    subject: "system.service.not_ready",
    stream: "SYSTEM",
    type: "io.orderflow.service.not_ready.v1",
    version: 1,
    producer: "every service",
    description: "An instance stopped being ready; `checks` names the failing ones.",
    entity: "service/instance",
    data: serviceLifecycleV1,
  }),
  "system.service.stopping": define({
    subject: "system.service.stopping",
    stream: "SYSTEM",
    type: "io.orderflow.service.stopping.v1",
    version: 1,
    producer: "every service",
    description: "An instance received SIGTERM/SIGINT and is shutting down.",
    entity: "service/instance",
    data: serviceLifecycleV1,
  }),
} as const;

export type EventName = keyof typeof eventCatalog;
export type EventData<N extends EventName> = z.infer<(typeof eventCatalog)[N]["data"]>;
export type UserRegistered = EventData<"users.registered">;
export type OrderCreated = EventData<"orders.created">;
export type OrderItem = z.infer<typeof orderItemSchema>;
export type ServiceLifecycle = z.infer<typeof serviceLifecycleV1>;

const byType = new Map<string, EventName>(
  Object.entries(eventCatalog).map(([name, def]) => [def.type, name as EventName]),
);

/** Finds the catalog entry for a CloudEvents `type`, or undefined for unknown types and versions. */
export function eventNameForType(type: string): EventName | undefined {
  return byType.get(type);
}
