import { createRoute, z } from "@hono/zod-openapi";
import { MAX_INDEXED_CHARS } from "../ingest/ingest.domain.js";
import { isStorableTime, noQuery, problemContent as problem, queryInt, storableText, streamCatalog, unavailableResponse, type StreamName } from "@orderflow/shared";

// Years 0100–9999 once in UTC (0100-01-01T00:00+14:00 is still year 99): see isStorableTime.
// RFC 3339 (5.6) lets the "T" and "Z" be lower case; zod's check takes upper case only.
const isoTime = (what: string) =>
  z
    .preprocess(
      (v) => (typeof v === "string" ? v.toUpperCase() : v),
      z.iso
        // abort: a time that is no time is not also "outside the years 0100–9999".
        .datetime({
          offset: true,
          // A "+" left unescaped in a query string arrives as a space: "…05 01:00".
          error: (iss) =>
            typeof iss.input === "string" && /T\d{2}:\d{2}(:\d{2}(\.\d+)?)? \d{2}(:?\d{2})?$/i.test(iss.input)
              ? "must be an RFC 3339 time with a zone, e.g. 2026-01-02T03:04:05Z; a + in a query string reads as a space: write it as %2B"
              : "must be an RFC 3339 time with a zone, e.g. 2026-01-02T03:04:05Z",
          abort: true,
        })
        .refine((t) => isStorableTime(Date.parse(t)), "must be in the years 0100–9999 (UTC)"),
    )
    .openapi({ description: what, type: "string", format: "date-time" });
// As long as the log keeps them: a longer value could match no stored row.
const text = (what: string) => storableText().min(1).max(MAX_INDEXED_CHARS).openapi({ description: what });

export const eventSchema = z
  .object({
    seq: z.number().int().openapi({ description: "Position in this log; the SSE event id" }),
    id: z.string().nullable().openapi({ description: "CloudEvents id (null when the body had none)" }),
    stream: z.string(),
    streamSeq: z.number().int(),
    subject: z.string().openapi({ description: "NATS subject without the namespace prefix" }),
    type: z.string().nullable(),
    source: z.string().nullable(),
    entity: z.string().nullable().openapi({ description: "CloudEvents subject: the user id, or service/instance" }),
    time: z.iso.datetime(),
    data: z.unknown(),
    headers: z.record(z.string(), z.string()),
    traceparent: z.string().nullable(),
    correlationId: z.string().nullable(),
    valid: z.boolean(),
    error: z.string().nullable().openapi({ description: "Why validation failed" }),
    raw: z.string().nullable().optional(),
    storedAt: z.iso.datetime(),
  })
  .openapi("StoredEvent");

export const listEventsQuery = z.strictObject({
  type: text("CloudEvents type (io.orderflow.user.registered.v1) or catalog name (users.registered)").optional(),
  subject: text("NATS subject without namespace, e.g. orders.created").optional(),
  source: text("CloudEvents source, e.g. /orderflow/user-service").optional(),
  entity: text("CloudEvents subject, e.g. a user id: one call gives that user's whole history").optional(),
  stream: z.enum(Object.keys(streamCatalog) as [StreamName, ...StreamName[]]).optional(),
  from: isoTime("Events at or after this time").optional(),
  to: isoTime("Events before this time").optional(),
  limit: queryInt(1, 200, 50),
  cursor: z.string().min(1).max(200).optional().openapi({ description: "The nextCursor of the previous page" }),
});

export const listEventsRoute = createRoute({
  method: "get",
  path: "/events",
  summary: "Stored events, newest first",
  request: { query: listEventsQuery },
  responses: {
    200: { description: "A page of events", content: { "application/json": { schema: z.object({ items: z.array(eventSchema), nextCursor: z.string().nullable() }).openapi("EventPage") } } },
    400: problem("Unknown parameter or malformed value"),
    503: unavailableResponse,
  },
});

export const getEventRoute = createRoute({
  method: "get",
  path: "/events/{id}",
  summary: "One event by its CloudEvents id",
  // Any id as published, not only a UUID: an invalid event is stored with the id it carried
  // (ours are UUIDs; a foreign or broken producer's need not be), and must be found by it too.
  request: { params: z.object({ id: text("The CloudEvents id as published (a UUID for orderflow's own events)").openapi({ param: { name: "id", in: "path" } }) }), query: noQuery },
  responses: {
    200: {
      description: "The event (the original when a dead letter repeats its id), with where else it was stored",
      content: { "application/json": { schema: eventSchema.extend({ copies: z.array(z.object({ seq: z.number(), stream: z.string(), streamSeq: z.number() })) }) } },
    },
    400: problem("id is longer than the log keeps, or holds a character it cannot store"),
    404: problem("No such event"),
    503: unavailableResponse,
  },
});

export const statsQuery = z.strictObject({
  window: queryInt(1, 1440, 15).openapi({ description: "Minutes back from now, 1–1440, default 15" }),
});

export const statsRoute = createRoute({
  method: "get",
  path: "/events/stats",
  summary: "Counts per type per minute",
  request: { query: statsQuery },
  responses: {
    200: {
      description: "One bucket per minute, oldest first, every minute present",
      content: {
        "application/json": {
          schema: z
            .object({
              window: z.number(),
              from: z.iso.datetime(),
              to: z.iso.datetime(),
              types: z.array(z.string()),
              totals: z.record(z.string(), z.number()),
              buckets: z.array(z.object({ minute: z.iso.datetime(), counts: z.record(z.string(), z.number()) })),
            })
            .openapi("EventStats"),
        },
      },
    },
    400: problem("window out of range or unknown parameter"),
    503: unavailableResponse,
  },
});

export const streamQuery = z.strictObject({
  type: listEventsQuery.shape.type,
  entity: listEventsQuery.shape.entity,
  after: z
    .string()
    .regex(/^\d{1,15}$/, "must be a log position (a seq: a whole number of at most 15 digits)")
    .optional()
    .openapi({ description: "Start after this seq (first connect); reconnects send Last-Event-ID instead" }),
});

export const lastEventIdHeader = z.string().regex(/^\d{1,15}$/, "must be a log position (the id of an event this stream sent: a whole number of at most 15 digits)");

/**
 * The live tail, for the OpenAPI document only: it streams, so its handler is a plain route that
 * validates the same schemas itself.
 */
export const streamRouteDoc = createRoute({
  method: "get",
  path: "/events/stream",
  summary: "Live tail of stored events (Server-Sent Events)",
  request: {
    query: streamQuery,
    headers: z.object({ "last-event-id": lastEventIdHeader.optional().openapi({ description: "Resume after this seq (browsers send it on reconnect)" }) }),
  },
  responses: {
    200: {
      description:
        "`ready` first (its id is the position the stream starts after), then one `event` per stored event matching the filters (id = its seq, data = a StoredEvent), and, when there is nothing to send for 15 s, a `position` event (id and data.after = the newest seq passed) if the filter skipped rows since the last id, so a reconnect resumes there, otherwise a `: keep-alive` comment",
      content: { "text/event-stream": { schema: z.string() } },
    },
    400: problem("unknown parameter, or a malformed after= / Last-Event-ID"),
    503: { ...unavailableResponse, description: "This instance serves its maximum of live tails, or the tail cannot start (the database is unreachable): retry after `Retry-After` seconds" },
  },
});
