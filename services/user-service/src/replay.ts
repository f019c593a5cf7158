import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { inboxReplayTarget, runReplayCommand, isMain } from "@orderflow/shared";
import { orderCreatedHandlers } from "./consumers/order-created.js";
import { users } from "./db/schema.js";

/**
 * Rebuilds every user's orderCount from ORDERS through the live consumer's handler and inbox.
 * A full rebuild zeroes the counts and deletes this consumer's inbox rows in one transaction,
 * holding both tables so the live consumer cannot apply an event in between.
 */
export const userServiceReplayTarget = inboxReplayTarget({
  name: "user-service",
  consumer: "user-service",
  sources: [{ stream: "ORDERS", filterSubject: "orders.created" }],
  handlers: orderCreatedHandlers,
  async resetProjection(tx) {
    await tx.execute(sql`lock table ${users}, inbox in exclusive mode`);
    await tx.update(users).set({ orderCount: 0 });
  },
});

// Entry point: `npm run replay -- --service user-service [...]` runs this with the service's database.
if (isMain(import.meta.url)) {
  await runReplayCommand(userServiceReplayTarget, process.argv.slice(2), process.env, { migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)) });
}
