import { z } from "@hono/zod-openapi";
import { isStorableText } from "../db/text.js";

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

/** Free text that will be stored or compared in Postgres: refused as a field error, not a 500. */
export const storableText = () => z.string().refine(isStorableText, "must not contain NUL characters or unpaired surrogates");
