import { createRoute, z } from "@hono/zod-openapi";
import { createdResponse, idParams, jsonBody, noQuery, pageQuery, pageSchema, problemContent as problem, storableText, unavailableResponse, writeHeaders } from "@orderflow/shared";

export const userSchema = z
  .object({
    id: z.uuid(),
    email: z.string(),
    name: z.string(),
    orderCount: z.number().int().openapi({ description: "Orders created for this user; updated from orders.created events, so it trails the order service by a moment." }),
    createdAt: z.iso.datetime(),
  })
  .openapi("User");

// Strict: an unknown field is a 400, not silently dropped (and so not ignored by an
// Idempotency-Key's "same body" comparison either).
export const registerUserBody = z
  .strictObject({
    email: z
      .string()
      .trim()
      .max(254)
      .email()
      // RFC 5321 §4.5.3.1.1: no mail server takes a longer local part.
      .refine((e) => e.lastIndexOf("@") <= 64, "must have at most 64 characters before the @")
      .openapi({ example: "ada@example.com", description: "Trimmed; unique regardless of case; at most 64 characters before the @." }),
    // A name is shown to people: control characters (a bell, a line break, an escape sequence for
    // a terminal) and names of nothing but invisible characters (U+200B, U+2060) are mistakes.
    // NFC, so that one name has one form: "José" typed with a combining accent (e + U+0301) is
    // stored, counted against the limit and published as the same string as the precomposed é.
    name: storableText()
      .normalize("NFC")
      .trim()
      .min(1)
      .max(100)
      // U+2028/U+2029 break lines as \n does (in JavaScript source and many UIs), and the
      // bidirectional overrides and isolates reorder the text shown after them ("Trojan Source").
      .refine((n) => !/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u.test(n), "must not contain control characters (line or paragraph breaks, tabs, escapes, bidirectional overrides)")
      // Blank letters (Hangul fillers, the braille blank) are letters to Unicode, not spaces, and a
      // combining mark shows only on a character before it.
      .refine((n) => /[^\p{Z}\p{Cf}\p{Cc}\p{M}\u115f\u1160\u2800\u3164\uffa0]/u.test(n), "must contain a visible character")
      .openapi({ example: "Ada Lovelace", description: "Normalised to Unicode NFC; 1–100 characters after trimming, at least one of them visible; no control characters (line or paragraph breaks, bidirectional overrides), NUL or unpaired surrogates." }),
  })
  .openapi("RegisterUser");

export const registerUserRoute = createRoute({
  method: "post",
  path: "/users",
  summary: "Register a user",
  middleware: [jsonBody()] as const,
  request: { headers: writeHeaders, body: { required: true, content: { "application/json": { schema: registerUserBody } } } },
  responses: {
    201: createdResponse("Registered; users.registered is published through the outbox", userSchema),
    400: problem("Invalid fields (or Idempotency-Key), listed in `errors`"),
    409: problem("The email is taken (case-insensitively)"),
    413: problem("Body over 16 KiB"),
    415: problem("Body is not JSON"),
    422: problem("The Idempotency-Key was used with a different body"),
    503: unavailableResponse,
  },
});

export const getUserRoute = createRoute({
  method: "get",
  path: "/users/{id}",
  summary: "Get a user",
  request: { params: idParams, query: noQuery },
  responses: {
    200: { description: "The user", content: { "application/json": { schema: userSchema } } },
    400: problem("id is not a UUID"),
    404: problem("No such user"),
    503: unavailableResponse,
  },
});

export const listUsersRoute = createRoute({
  method: "get",
  path: "/users",
  summary: "List users, newest first",
  request: { query: pageQuery },
  responses: {
    200: {
      description: "A page of users",
      content: { "application/json": { schema: pageSchema(userSchema, "UserPage") } },
    },
    400: problem("Invalid limit, cursor or unknown parameter"),
    503: unavailableResponse,
  },
});
