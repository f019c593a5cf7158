import type { z } from "zod";

export interface FieldError {
  /** Where the bad value is: `body`, `query`, `path` or `header`. */
  in: string;
  /** JSON Pointer (RFC 6901) to the value inside that location, e.g. `/items/0/sku`. */
  pointer: string;
  detail: string;
}

const escape = (segment: PropertyKey) => String(segment).replaceAll("~", "~0").replaceAll("/", "~1");

/** One entry per invalid field, so a client can show every problem at once. */
export function fieldErrors(location: string, error: z.ZodError): FieldError[] {
  return error.issues.flatMap((issue) => {
    const base = issue.path.map((p) => `/${escape(p)}`).join("");
    // An unrecognized key issue names the offending keys itself; point at each of them.
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => ({ in: location, pointer: `${base}/${escape(k)}`, detail: "is not a recognized field" }));
    }
    return [{ in: location, pointer: base || "/", detail: issue.message }];
  });
}
