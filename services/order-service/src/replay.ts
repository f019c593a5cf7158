import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { inboxReplayTarget, runReplayCommand, isMain } from "@orderflow/shared";
import { userRegisteredHandlers } from "./consumers/user-registered.js";

/**
 * Re-applies users.registered from USERS through the live consumer's handler and inbox:
 * customers that are missing are recorded again and missing welcome orders are created (their
 * orders.created go out through the outbox). Orders are the service's own records, not a
 * projection, so a full rebuild clears only the inbox; the handler is idempotent by itself
 * (a customer already recorded is left as it is, one welcome order per user).
 */
export const orderServiceReplayTarget = inboxReplayTarget({
  name: "order-service",
  consumer: "order-service",
  sources: [{ stream: "USERS", filterSubject: "users.registered" }],
  handlers: userRegisteredHandlers,
  async resetProjection(tx) {
    await tx.execute(sql`lock table inbox in exclusive mode`);
  },
});

// Entry point: `npm run replay -- --service order-service [...]` runs this with the service's database.
if (isMain(import.meta.url)) {
  await runReplayCommand(orderServiceReplayTarget, process.argv.slice(2), process.env, { migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)) });
}
