import { z } from "@hono/zod-openapi";

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

/** `?limit=&cursor=` for newest-first listings; unknown parameters are rejected. */
export const pageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20).openapi({ description: "1–100, default 20" }),
  cursor: z.string().min(1).optional().openapi({ description: "The nextCursor of the previous page" }),
});

export const pageSchema = <T extends z.ZodType>(item: T, name: string) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(name);

export const idParams = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) });

/**
 * Free text that will be stored or compared in Postgres: text there cannot hold NUL, and a lone
 * UTF-16 surrogate has no UTF-8 form (the driver would store U+FFFD while the answer and the
 * event still carried the original). Refused as a field error instead of failing in the database.
 */
export const storableText = () => z.string().regex(/^[^\u0000\uD800-\uDFFF]*$/u, "must not contain NUL characters or unpaired surrogates");
