import type { z } from "zod";

export interface FieldError {
  /** Where the bad value is: `body`, `query`, `path` or `header`. */
  in: string;
  /** JSON Pointer (RFC 6901) to the value inside that location, e.g. `/items/0/sku`. */
  pointer: string;
  detail: string;
}

/** One JSON Pointer (RFC 6901) reference token: `~` and `/` escaped. */
export const pointerSegment = (segment: PropertyKey) => String(segment).replaceAll("~", "~0").replaceAll("/", "~1");

/**
 * One entry per invalid field, so a client can show every problem at once. A value that breaks
 * several rules (an integer both unsafe and over the maximum) is still one entry, its details
 * joined.
 */
export function fieldErrors(location: string, error: z.ZodError): FieldError[] {
  const byPointer = new Map<string, FieldError>();
  const add = (pointer: string, detail: string) => {
    const seen = byPointer.get(pointer);
    if (!seen) byPointer.set(pointer, { in: location, pointer, detail });
    else if (!seen.detail.split("; ").includes(detail)) seen.detail = `${seen.detail}; ${detail}`;
  };
  // zod goes on checking a value of the wrong type (a string's min length on an array:
  // "expected array to have >=1 items"); once the type is wrong, only that is said of it.
  const mistyped = new Set(error.issues.filter((i) => i.code === "invalid_type").map((i) => i.path.map((p) => `/${pointerSegment(p)}`).join("")));
  for (const issue of error.issues) {
    const base = issue.path.map((p) => `/${pointerSegment(p)}`).join("");
    if (issue.code !== "invalid_type" && mistyped.has(base)) continue;
    // An unrecognized key issue names the offending keys itself; point at each of them.
    if (issue.code === "unrecognized_keys") for (const k of issue.keys) add(`${base}/${pointerSegment(k)}`, "is not a recognized field");
    else add(base || "/", issue.message);
  }
  return [...byPointer.values()];
}
