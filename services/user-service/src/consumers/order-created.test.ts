import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batchStatement, SESSION_SETTINGS, STATEMENT_HANDLER, type StatementBackedHandler } from "@orderflow/shared";
import { createMigratedDatabase, teardown } from "@orderflow/shared/testing";
import { orderCreatedHandlers } from "./order-created.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;
let sql: postgres.Sql;

beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_users_plan");
  // One connection (PREPARE and EXPLAIN EXECUTE share a session), set up as a service's is.
  sql = postgres(env.url, { max: 1, onnotice: () => {}, connection: { ...SESSION_SETTINGS } });
});
afterAll(() => teardown(() => sql?.end(), () => env?.drop()));

// The text the runner prepares for this handler's batches.
const handler = orderCreatedHandlers["orders.created"] as StatementBackedHandler<"orders.created">;
const text = batchStatement(handler[STATEMENT_HANDLER] as Parameters<typeof batchStatement>[0]);

/** The plan a prepared statement settles on after its first executions (its generic plan). */
async function genericPlan(): Promise<string> {
  await sql.unsafe("deallocate all");
  await sql.unsafe(`prepare count_orders(text, text, text) as ${text}`);
  await sql.unsafe("set plan_cache_mode = force_generic_plan");
  const rows = await sql.unsafe<{ "QUERY PLAN": string }[]>("explain execute count_orders('c', 'i', '[]')");
  await sql.unsafe("reset plan_cache_mode");
  return rows.map((r) => r["QUERY PLAN"]).join("\n");
}

describe("orders.created batch statement", () => {
  // The statement is prepared once per connection and keeps the plan it got while users was
  // small (without autovacuum nothing replans it). A plan that scans users would then cost a
  // full pass over the table for every batch as the table grows.
  it("finds users by primary-key probes whatever the size of the table", async () => {
    let size = 0;
    for (const target of [0, 100, 700, 3000, 20000]) {
      await sql`insert into users (id, email, name, order_count, created_at)
        select gen_random_uuid(), 'plan-' || i || '@example.com', 'P', 0, now() from generate_series(${size + 1}::int, ${target}::int) i`;
      size = target;
      const plan = await genericPlan();
      expect(plan, `${size} users`).not.toMatch(/Seq Scan on users/);
      // The acceptance check (users u) and the update (users u_1) each go through the key.
      expect(plan, `${size} users`).toMatch(/Index Only Scan using users_pkey on users u\b/);
      expect(plan, `${size} users`).toMatch(/Index Scan using users_pkey on users u_1|Bitmap Index Scan on users_pkey/);
    }
  });
});
