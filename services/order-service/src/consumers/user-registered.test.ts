import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq, sql } from "drizzle-orm";
import { STATEMENT_HANDLER, batchStatement, createEvent, decodeEvent, runBatchStatement, uuidv7, type StatementBackedHandler, type StatementHandler, takeQueued, type Tx, type CloudEvent, type OutboxMessage, type UserRegistered } from "@orderflow/shared";
import { createMigratedDatabase } from "@orderflow/shared/testing";
import { customers, orders, outbox } from "../db/schema.js";
import { userRegisteredHandlers } from "./user-registered.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;
beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_orders_welcome");
});
afterAll(() => env?.drop());

const registered = (userId = uuidv7(), name = "W"): CloudEvent<UserRegistered> =>
  createEvent({ name: "users.registered", source: "/t", subject: userId, data: { userId, email: `${userId}@example.com`, name, registeredAt: new Date().toISOString() } });

describe("welcome orders (statement handler)", () => {
  it("creates one welcome order per user, even for the same user twice, and queues exactly the orders.created it wrote", async () => {
    const first = registered();
    const batch = [first, registered(), registered(first.data.userId)]; // the last is a re-published registration
    // The runner's batch path: one statement with the inbox insert, as a live consumer runs it.
    const def = (userRegisteredHandlers["users.registered"] as unknown as StatementBackedHandler<"users.registered">)[STATEMENT_HANDLER];
    const result = await runBatchStatement(env.db, batchStatement(def as StatementHandler), def as StatementHandler, "order-service", "test", batch.map((event, i) => ({ event, subject: "users.registered", streamSeq: i + 1 })));
    expect(result.rejected).toEqual([]);
    expect(result.fresh).toBe(3);
    const queued: OutboxMessage[] = result.queued;
    for (const userId of [first.data.userId, batch[1]!.data.userId]) {
      expect(await env.db.select().from(orders).where(eq(orders.userId, userId))).toHaveLength(1);
    }
    const rows = await env.db.select().from(outbox).orderBy(outbox.seq);
    expect(rows).toHaveLength(2);
    expect(queued).toEqual(rows.map((r) => ({ eventId: r.eventId, subject: "orders.created", payload: r.payload, headers: r.headers })));
    expect(rows.map((r) => (decodeEvent(r.payload).event.data as { userId: string }).userId)).toEqual([first.data.userId, batch[1]!.data.userId]);
  });

  it("as a per-event handler inside a transaction, applies once and queues the event for the relay", async () => {
    const event = registered();
    const handler = userRegisteredHandlers["users.registered"]!;
    let queued: OutboxMessage[] = [];
    await env.db.transaction(async (tx) => {
      await handler(tx, event, {});
      await handler(tx, event, {}); // a second apply (no inbox here) still makes no second order
      queued = takeQueued(tx as Tx);
    });
    expect(await env.db.select().from(orders).where(eq(orders.userId, event.data.userId))).toHaveLength(1);
    expect(queued).toHaveLength(1);
    expect((decodeEvent(queued[0]!.payload).event.data as { userId: string }).userId).toBe(event.data.userId);
  });

  it("stores a customer's name in NFC, as user-service does, also from an event written before it did; the migration brings older rows to it", async () => {
    const event = registered(uuidv7(), "Jose\u0301");
    const def = (userRegisteredHandlers["users.registered"] as unknown as StatementBackedHandler<"users.registered">)[STATEMENT_HANDLER];
    await runBatchStatement(env.db, batchStatement(def as StatementHandler), def as StatementHandler, "order-service", "test", [{ event, subject: "users.registered", streamSeq: 100 }]);
    expect((await env.db.select().from(customers).where(eq(customers.userId, event.data.userId)))[0]?.name).toBe("Jos\u00e9");
    // A row stored before this release, as it was typed.
    const old = uuidv7();
    await env.db.insert(customers).values({ userId: old, email: `${old}@example.com`, name: "Nun\u0303ez", registeredAt: new Date() });
    await env.db.execute(sql.raw(readFileSync(new URL("../../drizzle/0003_customer_names_nfc.sql", import.meta.url), "utf8")));
    expect((await env.db.select().from(customers).where(eq(customers.userId, old)))[0]?.name).toBe("Nu\u00f1ez");
  });
});
