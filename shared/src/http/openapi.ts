import { z, type RouteConfig } from "@hono/zod-openapi";
import { isStorableText } from "../db/text.js";
import { IDEMPOTENCY_KEY_PATTERN } from "./idempotency.js";

/** OpenAPI schema of the RFC 9457 problem body every error response uses. */
export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    errors: z
      .array(z.object({ in: z.string(), pointer: z.string(), detail: z.string() }))
      .optional()
      .openapi({ description: "One entry per invalid field" }),
  })
  .openapi("Problem");

/** A route response documented as problem+json. */
export const problemContent = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: problemSchema } },
});

/**
 * 503, documented on every route that reads or writes the database: the database does not
 * answer, its migrations are not applied yet, or (POST /users) too many writes already wait.
 */
export const unavailableResponse = {
  ...problemContent("The database is unreachable, its migrations are pending, or too many writes wait for it: retry after `Retry-After` seconds"),
  headers: { "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" as const, minimum: 1 } } },
};

/**
 * The headers a write route reads, for its OpenAPI document. Deliberately lenient: the handler
 * checks the key (readIdempotencyKey, which can also see a repeated header) and a malformed
 * traceparent only starts a new trace, so the document states the rules without a second
 * validator that could disagree with the first.
 */
export const writeHeaders = z.object({
  "idempotency-key": z.string().optional().openapi({
    description:
      "1–255 printable ASCII characters, sent once. A retry with the same key and body replays the first answer (with `Idempotent-Replayed: true`) without a second write; the same key with another body is a 422. Keys are kept at least IDEMPOTENCY_TTL_MS (24 h by default).",
    pattern: IDEMPOTENCY_KEY_PATTERN.source,
    example: "checkout-7f3a9c",
  }),
  traceparent: z.string().optional().openapi({
    description: "W3C trace context: the events this write publishes continue the caller's trace. Malformed → a new trace.",
    example: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  }),
});

/**
 * `route` with its request headers in the OpenAPI document only. @hono/zod-openapi validates a
 * route's `request.headers` on every request, which materialises and parses every header: ~8 µs
 * per POST in a micro-benchmark, for a schema that is lenient on purpose (see writeHeaders).
 * Registers the documented form and returns the form to serve (hidden, without headers):
 * `app.openapi(documentedHeaders(app, route), handler)`.
 */
export function documentedHeaders<R extends RouteConfig>(app: { openAPIRegistry: { registerPath(route: RouteConfig): void } }, route: R): R {
  const { middleware: _middleware, ...documented } = route;
  app.openAPIRegistry.registerPath(documented);
  const { headers: _headers, ...request } = route.request ?? {};
  return { ...route, request, hide: true };
}

/** The 201 of a write route: the created resource, where it lives, and whether it is a replay. */
export const createdResponse = (description: string, schema: z.ZodType) => ({
  description,
  headers: {
    Location: { description: "Path of the created resource", schema: { type: "string" as const } },
    "Idempotent-Replayed": { description: "`true` when this answer replays an earlier request's with the same Idempotency-Key", schema: { type: "string" as const, enum: ["true"] } },
  },
  content: { "application/json": { schema } },
});

/**
 * A whole number in a query string, in decimal digits only: `z.coerce.number()` would also take
 * `0x10`, `1e1` or ` 1` (JavaScript's Number()).
 */
export const queryInt = (min: number, max: number, fallback: number) =>
  z
    .string()
    .regex(/^\d{1,15}$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .default(fallback)
    .openapi({ type: "integer", minimum: min, maximum: max, default: fallback, description: `${min}–${max}, default ${fallback}` });

/** `?limit=&cursor=` for newest-first listings; unknown parameters are rejected. */
export const pageQuery = z.strictObject({
  limit: queryInt(1, 100, 20),
  cursor: z.string().min(1).optional().openapi({ description: "The nextCursor of the previous page" }),
});

export const pageSchema = <T extends z.ZodType>(item: T, name: string) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(name);

export const idParams = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) });

/** The query of a route that takes none: a parameter sent anyway is refused, as on the listings. */
export const noQuery = z.strictObject({});

/** Free text that will be stored or compared in Postgres: refused as a field error, not a 500. */
export const storableText = () => z.string().refine(isStorableText, "must not contain NUL characters or unpaired surrogates");
