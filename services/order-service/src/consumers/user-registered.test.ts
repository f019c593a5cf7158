import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { BATCH_HANDLERS, createEvent, decodeEvent, takeQueued, uuidv7, type CloudEvent, type OutboxMessage, type Tx, type UserRegistered } from "@orderflow/shared";
import { createMigratedDatabase } from "@orderflow/shared/testing";
import { orders, outbox } from "../db/schema.js";
import { userRegisteredHandlers } from "./user-registered.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;
beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_orders_welcome");
});
afterAll(() => env?.drop());

const registered = (userId = uuidv7()): CloudEvent<UserRegistered> =>
  createEvent({ name: "users.registered", source: "/t", subject: userId, data: { userId, email: `${userId}@example.com`, name: "W", registeredAt: new Date().toISOString() } });

describe("welcome orders (batch handler)", () => {
  it("creates one welcome order per user, even for the same user twice, and queues exactly the orders.created it wrote", async () => {
    const welcome = userRegisteredHandlers[BATCH_HANDLERS]!["users.registered"]!;
    const first = registered();
    const batch = [first, registered(), registered(first.data.userId)]; // the last is a re-published registration
    let queued: OutboxMessage[] = [];
    await env.db.transaction(async (tx) => {
      await welcome(tx, batch);
      queued = takeQueued(tx as Tx);
    });
    for (const userId of [first.data.userId, batch[1]!.data.userId]) {
      expect(await env.db.select().from(orders).where(eq(orders.userId, userId))).toHaveLength(1);
    }
    const rows = await env.db.select().from(outbox).orderBy(outbox.seq);
    expect(rows).toHaveLength(2);
    expect(queued).toEqual(rows.map((r) => ({ eventId: r.eventId, subject: "orders.created", payload: r.payload, headers: r.headers })));
    expect(rows.map((r) => (decodeEvent(r.payload).event.data as { userId: string }).userId)).toEqual([first.data.userId, batch[1]!.data.userId]);
  });
});
