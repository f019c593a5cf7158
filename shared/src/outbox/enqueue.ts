import type { CloudEvent } from "../events/envelope.js";
import type { Executor } from "../db/database.js";
import { outbox } from "../db/tables.js";

/**
 * Writes events to the outbox inside the caller's transaction. They are published by the
 * relay only once that transaction commits, and never if it rolls back.
 */
export async function enqueueEvents(
  tx: Executor,
  events: readonly { subject: string; event: CloudEvent; headers?: Record<string, string> }[],
): Promise<void> {
  if (events.length === 0) return;
  await tx.insert(outbox).values(
    events.map((e) => ({
      eventId: e.event.id,
      subject: e.subject,
      payload: JSON.stringify(e.event),
      headers: e.headers ?? {},
      createdAt: new Date(e.event.time),
    })),
  );
}
