import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, openDatabase, type Database } from "@orderflow/shared";
import { createApp } from "../app.js";
import { outbox } from "../db/schema.js";

// The embedded database behind `npm start`: same migrations, same code path, no server.
let database: Database;
let app: ReturnType<typeof createApp>;
beforeAll(async () => {
  database = await openDatabase("pglite://memory");
  await database.migrate(fileURLToPath(new URL("../../drizzle", import.meta.url)));
  app = createApp({ db: database.db, log: createLogger({ service: "test", level: "silent" }), published: () => {} });
});
afterAll(() => database?.close());

describe("embedded PGlite", () => {
  it("registers, reads back, enforces case-insensitive uniqueness and writes the outbox row", async () => {
    const post = (email: string) =>
      app.request("/users", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, name: "Lite" }) });
    const res = await post("Lite@Example.com");
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    expect((await app.request(`/users/${id}`)).status).toBe(200);
    expect((await post("lite@example.COM")).status).toBe(409);
    expect(await database.db.select().from(outbox)).toHaveLength(1);
    await database.ping();
  });
});
