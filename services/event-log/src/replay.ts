import { fileURLToPath } from "node:url";
import { runReplayCommand, streamCatalog, type BatchResult, type ReplayMessage, type ReplayTarget, type StreamName, isMain } from "@orderflow/shared";
import { and, eq, inArray, sql } from "drizzle-orm";
import { events } from "./db/schema.js";
import { toEventRow } from "./ingest/ingest.domain.js";
import { insertEvents } from "./ingest/ingest.store.js";

const rowOf = (m: ReplayMessage) => toEventRow({ stream: m.stream, streamSeq: m.seq, streamTime: m.storedAt, subject: m.subject, data: m.data, headers: m.headers });

/**
 * Reloads the event log from every stream. A full rebuild empties the table first; with
 * --from-* rows already stored are left alone and only missing ones are added.
 */
export const eventLogReplayTarget: ReplayTarget = {
  name: "event-log",
  sources: (Object.keys(streamCatalog) as StreamName[]).map((stream) => ({ stream })),
  async reset(tx) {
    await tx.execute(sql`truncate table ${events}`);
  },
  async apply(tx, batch): Promise<BatchResult> {
    const rows = batch.map(rowOf);
    const inserted = (await insertEvents(tx, rows)).length;
    return { applied: inserted, skipped: batch.length - inserted, failed: 0 };
  },
  async preview(db, batch, full) {
    if (full) return { applied: batch.length, skipped: 0, failed: 0 };
    let skipped = 0;
    const byStream = new Map<string, ReplayMessage[]>();
    for (const m of batch) byStream.set(m.stream, [...(byStream.get(m.stream) ?? []), m]);
    for (const [stream, msgs] of byStream) {
      const found = await db
        .select({ seq: events.streamSeq })
        .from(events)
        .where(and(eq(events.stream, stream), inArray(events.streamSeq, msgs.map((m) => m.seq))));
      skipped += found.length;
    }
    return { applied: batch.length - skipped, skipped, failed: 0 };
  },
};

// Entry point: `npm run replay -- --service event-log [...]` runs this with the log's database.
if (isMain(import.meta.url)) {
  await runReplayCommand(eventLogReplayTarget, process.argv.slice(2), process.env, { migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)) });
}
