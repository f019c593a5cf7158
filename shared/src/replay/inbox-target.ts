import { and, eq, inArray } from "drizzle-orm";
import type { Db, Tx } from "../db/database.js";
import { inbox } from "../db/tables.js";
import { PermanentError, UnknownEventTypeError } from "../errors/index.js";
import type { CloudEvent } from "../events/envelope.js";
import type { StreamName } from "../events/catalog.js";
import { decodeEvent, type DecodedEvent } from "../events/decode.js";
import { TRACEPARENT } from "../events/trace.js";
import type { AnyEventHandler, EventHandlers } from "../consumer/runner.js";
import type { BatchResult, FailedEvent, ReplayMessage, ReplayTarget } from "./replay.js";

export interface InboxTargetOptions {
  /** Shown in logs and the final count, e.g. "user-service". */
  name: string;
  /** The live consumer's inbox key (its durable name before the namespace prefix). */
  consumer: string;
  sources: { stream: StreamName; filterSubject?: string }[];
  handlers: EventHandlers;
  /** Clears the projection; runs in the reset transaction before the inbox rows are deleted. */
  resetProjection(tx: Tx): Promise<void>;
}

/** How many event ids a dry run remembers to count later copies as skipped (≈ 100 MB at most). */
export const DRY_RUN_REMEMBERS = 1_000_000;

/** The message's event and handler, or why it has none: the live consumer dead-letters it for the same reason. */
function resolve(o: InboxTargetOptions, m: ReplayMessage): { decoded: DecodedEvent; handler: AnyEventHandler } | { failure: FailedEvent } {
  const failure = (err: Error, eventId: string | undefined): { failure: FailedEvent } => ({
    failure: { stream: m.stream, seq: m.seq, subject: m.subject, eventId, reason: `${err.name}: ${err.message}` },
  });
  let decoded: DecodedEvent;
  try {
    decoded = decodeEvent(m.data);
  } catch (err) {
    const msgId = Object.entries(m.headers).find(([k]) => k.toLowerCase() === "nats-msg-id")?.[1];
    return failure(err as Error, msgId);
  }
  const handler = o.handlers[decoded.name] as AnyEventHandler | undefined;
  if (!handler) return failure(new UnknownEventTypeError(`${o.consumer} has no handler for ${decoded.event.type}`), decoded.event.id);
  return { decoded, handler };
}

/**
 * A replay target that re-applies events through a service's own consumer handlers and inbox,
 * exactly as the live consumer does: an event already in the inbox is skipped, a fresh one is
 * recorded and applied in a savepoint, and a permanent handler error skips only that event.
 */
export function inboxReplayTarget(o: InboxTargetOptions): ReplayTarget {
  return {
    name: o.name,
    sources: o.sources,
    async reset(tx) {
      await o.resetProjection(tx);
      await tx.delete(inbox).where(eq(inbox.consumer, o.consumer));
    },
    async apply(tx, batch) {
      let applied = 0;
      let skipped = 0;
      const failures: FailedEvent[] = [];
      for (const m of batch) {
        const resolved = resolve(o, m);
        if ("failure" in resolved) {
          failures.push(resolved.failure);
          continue;
        }
        const { decoded, handler } = resolved;
        try {
          const fresh = await tx.transaction(async (sp) => {
            const recorded = await sp
              .insert(inbox)
              .values({ consumer: o.consumer, eventId: decoded.event.id, subject: decoded.name, streamSeq: m.seq })
              .onConflictDoNothing()
              .returning({ eventId: inbox.eventId });
            if (recorded.length === 0) return false;
            // The events it queues continue the original message's trace, as the live consumer's do.
            const traceparent = Object.entries(m.headers).find(([k]) => k.toLowerCase() === TRACEPARENT)?.[1];
            await handler(sp as unknown as Tx, decoded.event as CloudEvent, { traceparent });
            return true;
          });
          if (fresh) applied += 1;
          else skipped += 1;
        } catch (err) {
          if (!(err instanceof PermanentError)) throw err;
          failures.push({ stream: m.stream, seq: m.seq, subject: m.subject, eventId: decoded.event.id, reason: `${err.name}: ${err.message}` });
        }
      }
      return { applied, skipped, failed: failures.length, failures } satisfies BatchResult;
    },
    // A dry run cannot run handlers (they write), so it names only what does not decode or has no handler.
    async preview(db: Db, batch, full, counted) {
      const resolved = batch.map((m) => resolve(o, m));
      const failures = resolved.flatMap((x) => ("failure" in x ? [x.failure] : []));
      const decoded = resolved.flatMap((x) => ("decoded" in x ? [x.decoded] : []));
      const failed = failures.length;
      // The inbox applies an event id once: a copy later in the run, or in this batch, is skipped.
      const fresh = [...new Set(decoded.map((d) => d.event.id))].filter((id) => !counted.has(id));
      const seen =
        full || fresh.length === 0
          ? new Set<string>()
          : new Set((await db.select({ eventId: inbox.eventId }).from(inbox).where(and(eq(inbox.consumer, o.consumer), inArray(inbox.eventId, fresh)))).map((r) => r.eventId));
      const applied = fresh.filter((id) => !seen.has(id));
      // Bounded: past DRY_RUN_REMEMBERS ids, a later copy of an event not remembered counts as applied.
      for (const id of applied) if (counted.size < DRY_RUN_REMEMBERS) counted.add(id);
      return { applied: applied.length, skipped: decoded.length - applied.length, failed, failures };
    },
  };
}
