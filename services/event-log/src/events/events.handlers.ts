import type { IncomingMessage, ServerResponse } from "node:http";
import { and, asc, desc, gt, gte, inArray, ne, sql } from "drizzle-orm";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";
import { NotFoundError, ServiceUnavailableError, exemptFromDeadline, fieldErrors, problem, problemResponse, reportableError, type Db, type Logger, type ServiceApp } from "@orderflow/shared";
import { events, type EventRow } from "../db/schema.js";
import { UUID_SHAPED } from "../ingest/ingest.domain.js";
import { beforeCursor, decodeEventCursor, encodeEventCursor, eventConditions, matchesRow, presentEvent } from "./events.query.js";
import { getEventRoute, lastEventIdHeader, listEventsRoute, statsRoute, streamQuery, streamRouteDoc } from "./events.routes.js";
import type { Tail } from "./events.tail.js";

/** How long a live tail told to end at shutdown may take to send its end before its socket is cut. */
const STREAM_END_GRACE_MS = 1000;
/**
 * The keep-alive interval once a client has half-closed its side. The servers keep half-closed
 * connections open (a request sent with `… | nc` still gets its answer), so a client that left
 * (a closed tab, a reload) is only noticed when a write fails: the second after its FIN. At the
 * usual 15 s, every page reload held one of the instance's live tails that long.
 */
const HALF_CLOSED_KEEP_ALIVE_MS = 1000;

export interface EventsDeps {
  db: Db;
  log: Logger;
  tail: Tail;
  /** Keep-alive comment interval of the live tail. */
  keepAliveMs?: number;
  /** Live tail: rows per catch-up query, and live rows held for a client before it reads them from the table instead. */
  tailLimits?: { page: number; maxQueued: number };
  /** Live tails open at once in this process; past it a new one gets 503 (each holds a socket and, catching up, a pooled connection). */
  maxStreams?: number;
}

const minuteIso = (d: Date) => `${d.toISOString().slice(0, 16)}:00.000Z`;

export function registerEventRoutes(app: ServiceApp, { db, log, tail, keepAliveMs = 15_000, tailLimits: { page, maxQueued } = { page: 500, maxQueued: 2_000 }, maxStreams = 200 }: EventsDeps) {
  let open = 0;
  app.openapi(statsRoute, async (c) => {
    const { window } = c.req.valid("query");
    const to = new Date();
    const from = new Date(Math.floor(to.getTime() / 60_000) * 60_000 - (window - 1) * 60_000);
    const minute = sql<string>`to_char(date_trunc('minute', ${events.time} at time zone 'UTC'), 'YYYY-MM-DD"T"HH24:MI:00.000"Z"')`;
    const type = sql<string>`coalesce(${events.type}, '(invalid)')`;
    const rows = await db
      .select({ minute, type, count: sql<number>`count(*)::int`.mapWith(Number) })
      .from(events)
      // A dead letter is a copy of an event already counted (same type and time), not another one.
      .where(and(gte(events.time, from), ne(events.stream, "DLQ")))
      .groupBy(minute, type);
    const buckets = Array.from({ length: window }, (_, i) => ({ minute: minuteIso(new Date(from.getTime() + i * 60_000)), counts: {} as Record<string, number> }));
    const index = new Map(buckets.map((b, i) => [b.minute, i]));
    const totals: Record<string, number> = {};
    for (const r of rows) {
      const i = index.get(r.minute);
      if (i === undefined) continue; // an event time in the future of this clock
      buckets[i]!.counts[r.type] = r.count;
      totals[r.type] = (totals[r.type] ?? 0) + r.count;
    }
    return c.json({ window, from: from.toISOString(), to: to.toISOString(), types: Object.keys(totals).sort(), totals, buckets }, 200);
  });

  app.openAPIRegistry.registerPath(streamRouteDoc);
  app.get("/events/stream", async (c) => {
    // As the validated routes see a query: a repeated parameter is an array, so a 400, not
    // silently its first value.
    const query = streamQuery.safeParse(Object.fromEntries(Object.entries(c.req.queries()).map(([k, v]) => [k, v.length === 1 ? v[0] : v])));
    if (!query.success) return problemResponse(problem(400, "Bad Request", "the request has invalid fields", { errors: fieldErrors("query", query.error) }));
    const header = c.req.header("last-event-id");
    const resume = header === undefined ? undefined : lastEventIdHeader.safeParse(header);
    if (resume && !resume.success) {
      return problemResponse(problem(400, "Bad Request", "Last-Event-ID is not valid", { errors: fieldErrors("header", resume.error).map((e) => ({ ...e, pointer: "/Last-Event-ID" })) }));
    }
    if (open >= maxStreams) throw new ServiceUnavailableError(`this instance already serves ${maxStreams} live tails; retry shortly`, 5);
    // Hono answers HEAD by running this GET handler and dropping the body without cancelling
    // it: a stream started here would hold its slot and subscription for good.
    if (c.req.method === "HEAD") return c.body(null, 200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const matches = matchesRow(query.data);
    const conditions = eventConditions(query.data);
    // The response, to cut a client that does not read: its pending write would hold shutdown.
    const outgoing = (c.env as { outgoing?: Pick<ServerResponse, "destroy" | "once"> } | undefined)?.outgoing;
    const incoming = (c.env as { incoming?: Pick<IncomingMessage, "socket"> } | undefined)?.incoming;
    const requested = resume?.data !== undefined ? Number(resume.data) : query.data.after !== undefined ? Number(query.data.after) : undefined;

    // Live rows wait here while the client reads; past `maxQueued` they are dropped and read
    // back from the table instead (`behind`), so a slow client costs the process a bounded
    // buffer, not a copy of everything stored since it fell behind.
    const queue: EventRow[] = [];
    let behind = false;
    // The last seq the tail handed over, matching or not. Once every match up to it has been
    // sent, a quiet stream sends it (a `position` event instead of a keep-alive), so a filtered
    // client that reconnects resumes from there instead of reading again what it skipped.
    let examined = 0;
    let wake: (() => void) | undefined;
    // Ends the wait for the next write at once, to write a keep-alive.
    let nudge: (() => void) | undefined;
    let keepAliveEvery = keepAliveMs;
    let closed = false;
    const end = () => {
      closed = true;
      wake?.();
    };
    // Shutdown. A client that reads gets the stream's proper end (its last chunk: a clean EOF,
    // not a transfer cut short) once the handler leaves its loop; one whose socket is full keeps
    // the handler waiting in a write that only the socket's end settles, so it is cut after a
    // moment.
    const drop = () => {
      end();
      if (!outgoing) return;
      const cut = setTimeout(() => outgoing.destroy(), STREAM_END_GRACE_MS).unref();
      outgoing.once("close", () => clearTimeout(cut));
    };
    // Subscribed before the response starts, so a tail that cannot start is a 503, not a 200
    // stream that ends at once.
    // Counted before the await: requests arriving while earlier ones subscribe see each other.
    open++;
    let subscription;
    try {
      subscription = await tail.subscribe((rows) => {
        examined = rows.at(-1)?.seq ?? examined;
        const before = queue.length;
        if (queue.length + rows.length > maxQueued) {
          queue.length = 0;
          behind = true;
        } else for (const r of rows) if (matches(r)) queue.push(r);
        // Only for something to send: rows the filter drops must not keep putting off the
        // keep-alive that holds the connection open through proxies.
        if (behind || queue.length > before) wake?.();
      }, drop);
    } catch (err) {
      open--;
      log.warn({ err: reportableError(err).message }, "live tail could not start");
      throw new ServiceUnavailableError("the live tail cannot start right now; retry shortly", 5);
    }
    const { position, unsubscribe } = subscription;
    // The answer lasts as long as the client listens, so the request deadline stops here; until
    // now it covered the subscription (a frozen database answers 503, as on every other route).
    // Past it, the client already has that 503: let go of the slot and the subscription.
    if (!exemptFromDeadline(c)) {
      unsubscribe();
      open--;
      return c.body(null, 503);
    }

    // Failures end the stream and go to the log only: Hono's onError would send the client an
    // `error` event carrying the message (a failed query's SQL and parameters).
    return streamSSE(c, (stream) =>
      tailTo(stream)
        .catch((err: unknown) => void log.warn({ err: reportableError(err).message }, "live tail failed"))
        .finally(() => open--),
    );

    async function tailTo(stream: SSEStreamingApi) {
      // A client that leaves ends the handler (and its subscription, below).
      stream.onAbort(end);
      // Its FIN: write now and again shortly. To a client that has gone, the second write fails
      // and ends the stream; one that only half-closed keeps reading.
      const socket = incoming?.socket;
      const halfClosed = () => {
        keepAliveEvery = Math.min(keepAliveMs, HALF_CLOSED_KEEP_ALIVE_MS);
        nudge?.();
      };
      if (socket?.readableEnded) halfClosed();
      else socket?.once("end", halfClosed);
      // Every row after `position` reaches the listener, so reading the table from the client's
      // seq up to where the live rows take over leaves no gap.
      let last = requested ?? position;
      const send = async (r: EventRow) => {
        if (r.seq <= last) return;
        last = r.seq;
        await stream.writeSSE({ id: String(r.seq), event: "event", data: JSON.stringify(presentEvent(r)) });
      };
      try {
        // A position past the log's end is not one this log issued (it was emptied or restored
        // from a backup): starting there would hide every event until the log caught up with it,
        // so the stream starts from the end, and `ready` tells the client where that is. Past the
        // tail's position is not enough to say so: this replica's tail may trail the table.
        if (last > position) {
          const [end] = await db.select({ seq: sql<number>`coalesce(max(${events.seq}), 0)`.mapWith(Number) }).from(events);
          if (end && last > end.seq) last = end.seq;
        }
        // Behind it, or past it (this tail trails the table): the table has what to send first.
        behind ||= last !== position;
        // `ready` carries the position as its id: a client that reconnects before any event
        // sends it back as Last-Event-ID and misses nothing stored in between.
        await stream.writeSSE({ id: String(last), event: "ready", data: JSON.stringify({ after: last }), retry: 1000 });
        while (!closed) {
          if (behind) {
            behind = false;
            for (;;) {
              const rows = await db.select().from(events).where(and(conditions, gt(events.seq, last))).orderBy(asc(events.seq)).limit(page);
              for (const r of rows) await send(r);
              if (rows.length < page || closed) break;
            }
          }
          while (queue.length > 0 && !closed && !behind) await send(queue.shift()!);
          if (closed) break;
          if (behind) continue;
          const woke = await new Promise<boolean>((resolve) => {
            const t = setTimeout(() => resolve(false), keepAliveEvery);
            wake = () => {
              clearTimeout(t);
              resolve(true);
            };
            nudge = () => {
              clearTimeout(t);
              resolve(false);
            };
          });
          wake = nudge = undefined;
          if (woke || closed) continue;
          // Nothing is queued or owed from the table here, so every match up to `examined` has
          // been sent: a `position` event moves the client's Last-Event-ID there. It carries data
          // because Firefox, Safari and the eventsource-parser clients keep the id only of an
          // event with data (the spec and Chromium also take an id alone); a client listens for
          // `event`, so it sees nothing.
          if (!behind && queue.length === 0 && examined > last) {
            last = examined;
            await stream.writeSSE({ id: String(last), event: "position", data: JSON.stringify({ after: last }) });
          } else await stream.write(": keep-alive\n\n");
        }
      } finally {
        socket?.off("end", halfClosed);
        unsubscribe();
      }
    }
  });

  app.openapi(listEventsRoute, async (c) => {
    const q = c.req.valid("query");
    const after = q.cursor ? decodeEventCursor(q.cursor) : undefined;
    const rows = await db
      .select()
      .from(events)
      .where(and(eventConditions(q), after ? beforeCursor(after) : undefined))
      .orderBy(desc(events.time), desc(events.seq))
      .limit(q.limit + 1);
    const items = rows.slice(0, q.limit);
    const lastRow = items.at(-1);
    return c.json({ items: items.map(presentEvent), nextCursor: rows.length > q.limit && lastRow ? encodeEventCursor(lastRow) : null }, 200);
  });

  app.openapi(getEventRoute, async (c) => {
    const { id } = c.req.valid("param");
    // The original first; a dead letter repeats the id in the DLQ stream.
    const rows = await db
      .select()
      .from(events)
      // Event ids are text as published; ours are lower-case UUIDs, so an upper-case UUID (valid,
      // and found by /users/{id}) finds them too. Any other id is matched exactly.
      .where(inArray(events.eventId, [...new Set([id, UUID_SHAPED.test(id) ? id.toLowerCase() : id])]))
      .orderBy(sql`${events.stream} = 'DLQ'`, asc(events.seq))
      .limit(20);
    const [first, ...rest] = rows;
    if (!first) throw new NotFoundError(`no event with id ${id}`);
    return c.json({ ...presentEvent(first), copies: rest.map((r) => ({ seq: r.seq, stream: r.stream, streamSeq: r.streamSeq })) }, 200);
  });
}
