import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvent, createLogger, executeRows, loadConfig, uuidv7 } from "@orderflow/shared";
import { createMigratedDatabase, waitFor } from "@orderflow/shared/testing";
import { configSchema } from "../config.js";
import { toEventRow } from "../ingest/ingest.domain.js";
import { createEventWriter } from "../ingest/ingest.store.js";
import { pruneEvents, pruneOldEvents, pruneStatement, retentionWarning } from "./retention.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
const log = createLogger({ service: "test", level: "silent" });
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;
beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_eventlog_retention");
});
afterAll(() => env?.drop());

let streamSeq = 0;
/** Stores one registration per time given, as the ingester would; returns their event ids. */
async function storeAt(...times: number[]) {
  const events = times.map((at) => {
    const userId = uuidv7();
    return createEvent({ name: "users.registered", source: "/orderflow/user-service", subject: userId, time: new Date(at), data: { userId, email: "a@b.co", name: "A", registeredAt: new Date(at).toISOString() } });
  });
  await createEventWriter({ db: env.db }).write(events.map((e) => toEventRow({ stream: "USERS", streamSeq: ++streamSeq, streamTime: new Date(), subject: "users.registered", data: Buffer.from(JSON.stringify(e)), headers: {} })));
  return events.map((e) => e.id);
}
/** A logger whose lines the test can read. */
function capturingLog() {
  const out: { level: number; msg: string; [k: string]: unknown }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) out.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger({ service: "test", level: "info", destination }), lines: () => out };
}
const ids = async () => (await executeRows<{ event_id: string }>(env.db, sql`select event_id from events order by seq`)).map((r) => r.event_id);

describe("event log retention", () => {
  it("deletes the events older than the cut-off, a batch at a time, and nothing newer", async () => {
    await env.db.execute(sql`delete from events`);
    const hour = 3600_000;
    const now = Date.now();
    const cutoff = new Date(now - 2 * hour);
    const old = await storeAt(now - 5 * hour, now - 4 * hour, now - 3 * hour, now - 2 * hour - 1, now - 3 * hour);
    const kept = await storeAt(now - 2 * hour + 1, now);
    expect(await pruneEvents(env.db, cutoff, { batch: 2 })).toBe(old.length);
    expect(await ids()).toEqual(kept);
    expect(await pruneEvents(env.db, cutoff, { batch: 2 })).toBe(0);
    // Stored out of time order: the older ones after the newest doomed one are found too.
    const late = await storeAt(now - 3 * hour, now - 2 * hour - 1, now - 4 * hour, now - 5 * hour);
    expect(await pruneEvents(env.db, cutoff, { batch: 10 })).toBe(late.length);
    expect(await ids()).toEqual(kept);
  });

  it("finds its rows through the indexes, not by scanning the table, whether or not any is due", async () => {
    await env.db.execute(sql`delete from events`);
    // 20,000 rows a second apart, the oldest first, as the log stores them.
    await env.db.execute(sql`insert into events (stream, stream_seq, stream_time, subject, time, valid)
      select 'PLAN', g, now(), 'users.registered', now() - ((20000 - g) || ' seconds')::interval, true from generate_series(1, 20000) g`);
    await env.db.execute(sql`analyze events`);
    for (const ageS of [10, 5_000, 19_000, 100_000]) {
      const plan = (await executeRows<{ "QUERY PLAN": string }>(env.db, sql`explain ${pruneStatement(new Date(Date.now() - ageS * 1000), 5000)}`)).map((r) => r["QUERY PLAN"]).join("\n");
      // (A sort of the few doomed rows, when few are due, is the planner's fair choice.)
      expect(plan, `older than ${ageS} s`).not.toMatch(/Seq Scan/);
    }
    await env.db.execute(sql`delete from events`);
  });

  it("a pass (the service's periodic job) prunes what is older than EVENTLOG_MAX_AGE_MS and says how many", async () => {
    await env.db.execute(sql`delete from events`);
    const now = Date.now();
    const { log: captured, lines } = capturingLog();
    const [fresh] = await storeAt(now);
    await storeAt(now - 120_000);
    expect(await pruneOldEvents(env.db, captured, 60_000, now)).toBe(1);
    expect(await ids()).toEqual([fresh]);
    const said = await waitFor(() => lines().find((l) => l.msg.startsWith("pruned")), { what: "the pass to say what it pruned" });
    expect(said).toMatchObject({ pruned: 1, before: new Date(now - 60_000).toISOString() });
    // Nothing due: nothing said.
    expect(await pruneOldEvents(env.db, captured, 60_000, now)).toBe(0);
    expect(lines().filter((l) => l.msg.startsWith("pruned"))).toHaveLength(1);
  });

  it("warns when it is shorter than the streams' max_age, which a replay would undo", () => {
    const warning = "EVENTLOG_MAX_AGE_MS is shorter than STREAM_MAX_AGE_MS: a replay of the log stores again the pruned events the streams still hold";
    expect(retentionWarning(3600_000, 7 * 24 * 3600_000)).toBe(warning);
    expect([retentionWarning(0, 7 * 24 * 3600_000), retentionWarning(7 * 24 * 3600_000, 7 * 24 * 3600_000), retentionWarning(3600_000, 0)]).toEqual([undefined, undefined, undefined]);
  });

  it("keeps every event unless EVENTLOG_MAX_AGE_MS says otherwise, and refuses less than a minute", () => {
    const base = { DATABASE_URL: "pglite://memory" };
    expect(loadConfig(configSchema, base).EVENTLOG_MAX_AGE_MS).toBe(0);
    expect(loadConfig(configSchema, { ...base, EVENTLOG_MAX_AGE_MS: "7776000000" }).EVENTLOG_MAX_AGE_MS).toBe(7_776_000_000);
    for (const bad of ["5000", "-1", "1e9"]) expect(() => loadConfig(configSchema, { ...base, EVENTLOG_MAX_AGE_MS: bad }), bad).toThrow(/EVENTLOG_MAX_AGE_MS/);
  });
});
