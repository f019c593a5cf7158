import { STATUS_CODES } from "node:http";
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import { bodyLimit } from "hono/body-limit";
import type { Context, MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Logger } from "pino";
import { HttpProblemError, ServiceUnavailableError } from "../errors/index.js";
import { isMissingRelation, isTransientDbError, reportableError } from "../db/errors.js";
import { problem, problemResponse } from "./problem.js";
import { fieldErrors, pointerSegment } from "./validation.js";
import { duplicateMember } from "./duplicate-member.js";

export interface ServiceAppOptions {
  log: Logger;
}

/**
 * A Hono app with the conventions every orderflow service shares: validation failures become
 * 400 problems listing each field, unknown routes 404 problems, known errors their status,
 * a lost database 503 with Retry-After, and anything else a 500 that leaks no internals.
 */
export function createServiceApp({ log }: ServiceAppOptions) {
  const app = new OpenAPIHono({
    defaultHook: (result) => {
      if (!result.success) {
        const errors = fieldErrors(result.target === "json" ? "body" : result.target === "param" ? "path" : result.target, result.error as z.ZodError);
        return problemResponse(problem(400, "Bad Request", "the request has invalid fields", { errors }));
      }
    },
  });

  // Request metrics, once the service hands a sink over (observeRequests): the route pattern,
  // not the path, so ids in paths cannot multiply the series.
  let observe: RequestObserver | undefined;
  let schemaPending: (() => boolean) | undefined;
  let deadlineMs: number | undefined;
  app.use(async (c, next) => {
    if (!observe) return next();
    const started = performance.now();
    await next();
    // The route of the handler that answered (the index compose left on the request), not the
    // last pattern that matches the path: /events/stats also matches /events/:id. A middleware
    // that answered first (a 503 while requests are overdue) leaves a wildcard there: then the
    // last matching pattern, the route the request was for; none (404, 405) is "unmatched".
    const wildcard = (r: string) => r === "*" || r === "/*";
    const answered = routePath(c);
    const route = wildcard(answered) ? routePath(c, -1) : answered;
    observe(c.req.method, wildcard(route) ? "unmatched" : route, c.res.status, (performance.now() - started) / 1000);
  });

  // Hono keeps a parameter whose percent-escapes are not UTF-8 (`?type=%FF`) as the raw text, so
  // it was taken as a filter that matched nothing; bodies that are not UTF-8 are refused, and so
  // are these, naming the parameter.
  app.use(async (c, next) => {
    const bad = undecodableQueryParameter(c.req.url);
    // A path no route serves is its 404 (or 405) whatever its query.
    if (bad === undefined || !c.req.matchedRoutes.some((r) => r.method !== "ALL")) return next();
    return problemResponse(problem(400, "Bad Request", "the request has invalid fields", { errors: [{ in: "query", pointer: `/${pointerSegment(bad)}`, detail: "is not UTF-8 when its percent-escapes are decoded" }] }));
  });

  // A database that stops answering without closing its connections (a frozen server, a
  // blackholed network) would hold requests until the client gives up: past the deadline the
  // client gets a 503 instead. The clock starts once the body has arrived (jsonBody restarts it;
  // a slow upload is Node's 408, not the database's fault), and a streamed answer (the event
  // log's live tail) is exempt. The work goes on and a write may still commit, which the answer
  // says. Work still running past its deadline is counted: past MAX_OVERDUE of it, requests are
  // refused at once instead of piling more onto a database that does not answer.
  let overdue = 0;
  app.use(async (c, next) => {
    const ms = deadlineMs;
    if (!ms) return next();
    if (overdue >= MAX_OVERDUE) throw new ServiceUnavailableError(`${overdue} earlier requests still wait for the database past their deadline; retry later`, 5);
    let timer: NodeJS.Timeout | undefined;
    let expire!: (err: Error) => void;
    const expired = new Promise<never>((_, reject) => (expire = reject));
    const deadline: Deadline = {
      exempt: false,
      passed: false,
      pause: () => clearTimeout(timer),
      restart() {
        clearTimeout(timer);
        timer = setTimeout(() => {
          if (deadline.exempt) return;
          deadline.passed = true;
          overdue += 1;
          const write = c.req.method !== "GET" && c.req.method !== "HEAD";
          expire(new ServiceUnavailableError(`the request was not answered within ${ms} ms (the database is slow or unreachable)${write ? "; the write may still be applied: retry with the same Idempotency-Key" : ""}`, 5));
        }, ms);
      },
    };
    (c.set as (key: string, value: Deadline) => void)(DEADLINE, deadline);
    deadline.restart();
    const work = next();
    try {
      await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
      if (deadline.passed) void work.catch(() => {}).finally(() => (overdue -= 1));
    }
  });

  app.notFound((c) => {
    // A path the app serves, with another method: 405 with the methods it takes (RFC 9110
    // §15.5.6), so a client learns what it can do instead of that nothing is there.
    const allow = allowedMethods(app.router, c.req.path);
    if (allow.length > 0) {
      // OPTIONS asks what a resource takes (RFC 9110 §9.3.7): every path served answers it.
      if (c.req.method === "OPTIONS") return c.body(null, 204, { allow: allow.join(", ") });
      return problemResponse(problem(405, "Method Not Allowed", `${c.req.method} is not allowed on ${c.req.path}; use ${allow.join(", ")}`), { allow: allow.join(", ") });
    }
    return problemResponse(problem(404, "Not Found", `no route for ${c.req.method} ${c.req.path}`));
  });

  // Every request fails alike while the database is away: the first failure is logged, and the
  // ones like it within 5 s are counted and reported when those 5 s end, not logged one per
  // request (hundreds a second). Another error is logged at once.
  let window: NodeJS.Timeout | undefined;
  let windowErr: string | undefined;
  let unlogged = 0;
  const unavailable = (err: string, path: string) => {
    if (window && err === windowErr) return void unlogged++;
    log.warn({ err, path }, "database unavailable");
    if (window) return;
    windowErr = err;
    window = setTimeout(() => {
      if (unlogged > 0) log.warn({ err: windowErr, alsoFailed: unlogged }, "database unavailable: more requests failed alike");
      window = undefined;
      unlogged = 0;
    }, 5_000).unref();
  };

  app.onError((err, c) => {
    if (err instanceof HttpProblemError) {
      return problemResponse(problem(err.status, err.title, err.message, err.extensions), err instanceof ServiceUnavailableError ? { "retry-after": String(err.retryAfter) } : undefined);
    }
    if (err instanceof HTTPException) {
      // Hono raises these for malformed JSON and similar client mistakes.
      const status = err.status;
      // A 400 here is about the body as a whole (malformed JSON): it gets its `errors` entry too,
      // so a client reads every invalid-input answer the same way.
      const extensions = status === 400 ? { errors: [{ in: "body", pointer: "/", detail: err.message }] } : {};
      return problemResponse(problem(status, STATUS_CODES[status] ?? "Error", err.message, extensions), status === 415 ? { "accept-post": "application/json" } : undefined);
    }
    // Before the migrations are in (applied at start, or by the migrate Job), a missing table or
    // column is the server not being ready, not a bug: 503, like a database outage.
    if (schemaPending?.() && isMissingRelation(err)) {
      log.warn({ err: reportableError(err).message, path: c.req.path }, "database schema not migrated yet");
      return problemResponse(problem(503, "Service Unavailable", "the database schema is not migrated yet; retry shortly"), { "retry-after": "5" });
    }
    if (isTransientDbError(err)) {
      unavailable(reportableError(err).message, c.req.path);
      return problemResponse(problem(503, "Service Unavailable", "the database is unavailable; retry shortly"), { "retry-after": "1" });
    }
    log.error({ err: reportableError(err), path: c.req.path, method: c.req.method }, "unhandled error");
    return problemResponse(problem(500, "Internal Server Error", "an unexpected error occurred"));
  });

  return Object.assign(app, {
    /** Every answered request from now on is told to `fn`. */
    observeRequests(fn: RequestObserver) {
      observe = fn;
    },
    /** Requests not answered within `ms` get a 503 problem with Retry-After (0 or undefined: no deadline). */
    answerWithin(ms: number | undefined) {
      deadlineMs = ms;
    },
    /** While `fn` says the migrations are not all applied, a missing table or column answers 503. */
    whileSchemaPending(fn: () => boolean) {
      schemaPending = fn;
    },
  });
}

/** The name of the first query parameter (or of its value) whose percent-escapes are not UTF-8. */
export function undecodableQueryParameter(url: string): string | undefined {
  const at = url.indexOf("?");
  // Most requests have no escape in their query at all: nothing to decode.
  if (at < 0 || !url.includes("%", at)) return undefined;
  const end = url.indexOf("#", at);
  for (const pair of url.slice(at + 1, end < 0 ? undefined : end).split("&")) {
    if (!pair.includes("%")) continue;
    const eq = pair.indexOf("=");
    const rawName = (eq < 0 ? pair : pair.slice(0, eq)).replace(/\+/g, " ");
    // Hono drops a parameter without a name.
    if (rawName === "") continue;
    const name = decodeOrUndefined(rawName);
    if (name === undefined) return rawName;
    if (eq >= 0 && decodeOrUndefined(pair.slice(eq + 1).replace(/\+/g, " ")) === undefined) return name;
  }
  return undefined;
}

/** The text decoded; a `%` not followed by two hex digits stays itself, as Hono keeps it. */
function decodeOrUndefined(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/%(?![0-9A-Fa-f]{2})/g, "%25"));
  } catch {
    return undefined;
  }
}

/** Requests still running past their deadline beyond which new ones are refused at once. */
const MAX_OVERDUE = 256;

interface Deadline {
  exempt: boolean;
  /** The 503 has been sent: whatever the handler still does, nobody reads its answer. */
  passed: boolean;
  /** Stops the clock (while the body arrives); `restart` starts it again from zero. */
  pause(): void;
  restart(): void;
}
// On the request's context (its variables): a WeakMap keyed by the context, whose value's timer
// closes over that context, cost ~13 µs of GC per request in a micro-benchmark.
const DEADLINE = "orderflow.deadline";
const deadlineOf = (c: Context) => (c.get as (key: string) => Deadline | undefined)(DEADLINE);

/**
 * A streamed answer (Server-Sent Events) runs as long as the client listens: no deadline from
 * here on. Called once the stream can start, so what it waits on before (a query, a
 * subscription) still has the deadline. False when the deadline has already passed: the client
 * has its 503, and the caller should let go of what it set up.
 */
export const exemptFromDeadline = (c: Context): boolean => {
  const deadline = deadlineOf(c);
  if (!deadline) return true;
  if (deadline.passed) return false;
  deadline.exempt = true;
  return true;
};

export type RequestObserver = (method: string, route: string, status: number, seconds: number) => void;

export type ServiceApp = ReturnType<typeof createServiceApp>;

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/**
 * The methods for which the app has a route (not middleware, which is method "ALL") matching
 * `path`, asked of the app's own router so every path syntax it takes matches as it does when
 * serving; GET brings HEAD, and a path with any method takes OPTIONS (answered by notFound).
 */
function allowedMethods(router: { match(method: string, path: string): unknown }, path: string): string[] {
  const methods = new Set<string>();
  for (const method of METHODS) {
    // Each handler is stored with its route ([handler, route]), as Hono's #addRoute adds it.
    const [matches] = router.match(method, path) as [[[unknown, { method: string }], unknown][]];
    if (matches.some(([[, route]]) => route.method === method)) methods.add(method);
  }
  if (methods.size === 0) return [];
  if (methods.has("GET")) methods.add("HEAD");
  methods.add("OPTIONS");
  return [...methods].sort();
}

/**
 * Guards write routes: 415 unless the body is declared JSON, 413 past `maxBytes`.
 *
 * Behind Node's HTTP server a valid Content-Length is binding (its parser reads exactly that
 * many bytes and refuses a request that also says Transfer-Encoding), so checking the number is
 * enough, and the body can later be read straight from the socket. Hono's streaming `bodyLimit`
 * would first turn the request into a WHATWG Request with a ReadableStream body, a fifth of the
 * service's CPU per registration. Chunked bodies, and runtimes where the header is only a claim
 * (in-process `app.request`), are still counted while streaming.
 */
export function jsonBody({ maxBytes = 16 * 1024 }: { maxBytes?: number } = {}): MiddlewareHandler {
  const tooLarge = () => problemResponse(problem(413, "Content Too Large", `the request body is larger than ${maxBytes} bytes`));
  const streamed = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return async (c, next) => {
    // The deadline counts from a complete request (restarted below): how fast a client sends
    // its body is Node's 408, not the database's 503.
    deadlineOf(c)?.pause();
    const header = c.req.header("content-type") ?? "";
    const type = header.split(";")[0]!.trim().toLowerCase();
    if (type !== "application/json" && !JSON_SUFFIX_TYPE.test(type)) {
      return problemResponse(
        problem(415, "Unsupported Media Type", "the request body must be JSON (Content-Type: application/json)"),
        { "accept-post": "application/json" },
      );
    }
    // JSON is UTF-8 (RFC 8259 §8.1); a body declared in another charset would be read as UTF-8
    // and refused as malformed, or stored as the wrong characters.
    const charset = header.includes(";") ? CHARSET_PARAM.exec(header)?.[1] : undefined;
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      return problemResponse(
        problem(415, "Unsupported Media Type", `the request body must be JSON in UTF-8; got charset=${JSON.stringify(charset.slice(0, 50))}`),
        { "accept-post": "application/json" },
      );
    }
    // Node's parser undoes chunked framing only: a body sent with another transfer coding
    // (gzip, chunked) would be read still coded. RFC 9112 §6.1: 501.
    const transfer = c.req.header("transfer-encoding");
    if (transfer !== undefined && !/^\s*chunked\s*$/i.test(transfer)) {
      return problemResponse(problem(501, "Not Implemented", `the only transfer coding this server reads is chunked; got Transfer-Encoding: ${JSON.stringify(transfer.slice(0, 50))}`));
    }
    // A compressed body would be read as text and refused as "not UTF-8" or invalid JSON; say
    // what is wrong (RFC 9110 §15.5.16). Only `identity` is taken.
    const coding = c.req.header("content-encoding");
    if (coding !== undefined && !/^[\s,]*(identity[\s,]*)*$/i.test(coding)) {
      return problemResponse(
        problem(415, "Unsupported Media Type", `the request body must not be encoded (Content-Encoding: ${JSON.stringify(coding.slice(0, 50))}); send it as plain JSON`),
        { "accept-encoding": "identity" },
      );
    }
    // The route's own media-type check is narrower than RFC 9110 (no space before ";", no digit
    // in a +json type): a JSON type accepted here is handed on in its plain form. Rare, so the
    // headers are materialised only then.
    if (!ROUTE_ACCEPTS_JSON.test(header)) c.req.raw.headers.set("content-type", "application/json");
    const readThenNext = async (): Promise<void> => {
      const refused = await readUtf8Body(c);
      deadlineOf(c)?.restart();
      if (refused) c.res = refused;
      else await next();
    };
    const declared = c.req.header("content-length");
    if (declared !== undefined && /^\d{1,15}$/.test(declared)) {
      if (Number(declared) > maxBytes) return tooLarge();
      if (isNodeIncoming((c.env as { incoming?: unknown } | undefined)?.incoming)) return readThenNext();
    }
    // Hono's bodyLimit reads a body without a trusted length before calling on; a client that
    // stops sending it mid-way is a 400, not an error of ours (its ECONNRESET looks like a
    // database outage to the error handler).
    let reading = true;
    try {
      return await streamed(c, () => ((reading = false), readThenNext()));
    } catch (err) {
      if (reading) return unreadable();
      throw err;
    }
  };
}

/** The charset parameter of a Content-Type, quoted or not. */
const CHARSET_PARAM = /;\s*charset\s*=\s*"?([^";\s]*)"?/i;

const unreadable = () => problemResponse(problem(400, "Bad Request", "the request body could not be read to its end"));

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes the body strictly and leaves the text where `c.req.json()` (the route's validator)
 * reads it. The default decoding turns bytes that are not UTF-8 into U+FFFD, so a client's
 * mistake would be stored as a different name than it sent; this is the same single pass, only
 * refusing instead of replacing.
 */
async function readUtf8Body(c: Context): Promise<Response | undefined> {
  let bytes: ArrayBuffer;
  try {
    bytes = await c.req.raw.arrayBuffer();
  } catch {
    // The client went away mid-body, or was cut off by the server's request timeout.
    return unreadable();
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return problemResponse(problem(400, "Bad Request", "the request body is not valid UTF-8", { errors: [{ in: "body", pointer: "/", detail: "is not valid UTF-8" }] }));
  }
  const twice = duplicateMember(text);
  if (twice !== undefined) {
    return problemResponse(problem(400, "Bad Request", "the request has invalid fields", { errors: [{ in: "body", pointer: twice, detail: "is given more than once in its object: which one was meant cannot be known" }] }));
  }
  // Hono keeps body promises in this cache (its type says the value).
  (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
  return undefined;
}

/** A `+json` media type: a subtype name is RFC 6838's restricted-name (§4.2), any of them taken. */
const JSON_SUFFIX_TYPE = /^application\/[a-z0-9][a-z0-9!#$&^_.+-]{0,120}\+json$/;

/** What @hono/zod-openapi's body validator takes as JSON (its jsonRequestRegex). */
const ROUTE_ACCEPTS_JSON = /^application\/([a-z-.]+\+)?json(;\s*[a-zA-Z0-9-]+=([^;]+))*$/i;

/** The request came through @hono/node-server, whose parser enforces Content-Length. */
const isNodeIncoming = (incoming: unknown): boolean =>
  typeof incoming === "object" && incoming !== null && "socket" in incoming && "httpVersion" in incoming;
