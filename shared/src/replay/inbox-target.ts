import { and, eq, inArray } from "drizzle-orm";
import type { Db, Tx } from "../db/database.js";
import { inbox } from "../db/tables.js";
import { PermanentError } from "../errors/index.js";
import type { CloudEvent } from "../events/envelope.js";
import type { StreamName } from "../events/catalog.js";
import { decodeEvent, type DecodedEvent } from "../events/decode.js";
import { TRACEPARENT } from "../events/trace.js";
import type { AnyEventHandler, EventHandlers } from "../consumer/runner.js";
import type { BatchResult, ReplayMessage, ReplayTarget } from "./replay.js";

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

const decode = (m: ReplayMessage): DecodedEvent | undefined => {
  try {
    return decodeEvent(m.data);
  } catch {
    return undefined;
  }
};

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
      const r: BatchResult = { applied: 0, skipped: 0, failed: 0 };
      for (const m of batch) {
        const decoded = decode(m);
        const handler = decoded && (o.handlers[decoded.name] as AnyEventHandler | undefined);
        if (!decoded || !handler) {
          r.failed += 1;
          continue;
        }
        try {
          const applied = await tx.transaction(async (sp) => {
            const fresh = await sp
              .insert(inbox)
              .values({ consumer: o.consumer, eventId: decoded.event.id, subject: decoded.name, streamSeq: m.seq })
              .onConflictDoNothing()
              .returning({ eventId: inbox.eventId });
            if (fresh.length === 0) return false;
            // The events it queues continue the original message's trace, as the live consumer's do.
            const traceparent = Object.entries(m.headers).find(([k]) => k.toLowerCase() === TRACEPARENT)?.[1];
            await handler(sp as unknown as Tx, decoded.event as CloudEvent, { traceparent });
            return true;
          });
          if (applied) r.applied += 1;
          else r.skipped += 1;
        } catch (err) {
          if (!(err instanceof PermanentError)) throw err;
          r.failed += 1;
        }
      }
      return r;
    },
    async preview(db: Db, batch, full) {
      const decoded = batch.map(decode).filter((d): d is DecodedEvent => d !== undefined && o.handlers[d.name] !== undefined);
      const failed = batch.length - decoded.length;
      if (full || decoded.length === 0) return { applied: decoded.length, skipped: 0, failed };
      const seen = await db
        .select({ eventId: inbox.eventId })
        .from(inbox)
        .where(and(eq(inbox.consumer, o.consumer), inArray(inbox.eventId, decoded.map((d) => d.event.id))));
      return { applied: decoded.length - seen.length, skipped: seen.length, failed };
    },
  };
}
