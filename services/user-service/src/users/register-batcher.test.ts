import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { createLogger, uuidv7 } from "@orderflow/shared";
import { createMigratedDatabase, holdInTransaction } from "@orderflow/shared/testing";
import { createApp } from "../app.js";
import { outbox, users } from "../db/schema.js";
import { registerUser } from "./users.domain.js";
import { createRegisterBatcher } from "./register-batcher.js";

const migrations = fileURLToPath(new URL("../../drizzle", import.meta.url));
let env: Awaited<ReturnType<typeof createMigratedDatabase>>;

beforeAll(async () => {
  env = await createMigratedDatabase(migrations, "of_users_batch");
});
afterAll(() => env?.drop());

const count = async (table: typeof users | typeof outbox) => ((await env.db.select({ n: sql<number>`count(*)::int` }).from(table)) as [{ n: number }])[0].n;

describe("group commit of registrations", () => {
  it("commits concurrent registrations together; a duplicate email fails only its own request", async () => {
    const app = createApp({ db: env.db, log: createLogger({ service: "t", level: "silent" }), published: () => {} });
    const base = Array.from({ length: 40 }, (_, i) => `batch${i}-${uuidv7().slice(-6)}@example.com`);
    // Every fifth address is sent twice in the same burst, the second time in upper case.
    const emails = [...base, ...base.filter((_, i) => i % 5 === 0).map((e) => e.toUpperCase())];
    const [usersBefore, eventsBefore] = [await count(users), await count(outbox)];
    const responses = await Promise.all(
      emails.map((email) => app.request("/users", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, name: "B" }) })),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(base.length);
    expect(statuses.filter((s) => s === 409)).toHaveLength(emails.length - base.length);
    for (const r of responses.filter((x) => x.status === 409)) expect(r.headers.get("content-type")).toBe("application/problem+json");
    // Exactly one user and one event per distinct address.
    expect(await count(users)).toBe(usersBefore + base.length);
    expect(await count(outbox)).toBe(eventsBefore + base.length);
  });

  it("retries a failed batch one registration at a time, so one bad row does not fail its neighbours", async () => {
    await env.db.execute(sql.raw(`
      create function refuse_boom() returns trigger language plpgsql as $$
      begin if new.name = 'boom' then raise exception 'refused by test trigger'; end if; return new; end $$;
      create trigger refuse_boom before insert on users for each row execute function refuse_boom();`));
    try {
      let wakeups = 0;
      const batcher = createRegisterBatcher({ db: env.db, published: () => wakeups++, maxInFlight: 1 });
      const now = new Date();
      const make = (name: string) => registerUser({ email: `${name}-${uuidv7().slice(-8)}@example.com`, name }, { id: uuidv7(), now });
      // The first call takes the free slot alone; the next three queue up and commit as one batch.
      const firstRegistration = make("first");
      const first = batcher.register(firstRegistration.user, firstRegistration.event);
      const [a, boom, c] = [make("a"), make("boom"), make("c")];
      const outcomes = await Promise.allSettled([batcher.register(a.user, a.event), batcher.register(boom.user, boom.event), batcher.register(c.user, c.event)]);
      await first;
      expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
      expect((outcomes[0] as PromiseFulfilledResult<string>).value).toBe("created");
      expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/refused by test trigger|Failed query/);
      const stored = await env.db.select({ id: users.id }).from(users).where(sql`${users.id} in (${a.user.id}, ${boom.user.id}, ${c.user.id})`);
      expect(stored.map((r) => r.id).sort()).toEqual([a.user.id, c.user.id].sort());
      expect(wakeups).toBeGreaterThanOrEqual(2);
    } finally {
      await env.db.execute(sql.raw(`drop trigger refuse_boom on users; drop function refuse_boom();`));
    }
  });
  it("answers 503 past maxQueued waiting registrations instead of holding them all while the database does not answer", async () => {
    // A database that takes connections but answers nothing on the users table.
    const lock = await holdInTransaction(env.db, sql`lock table users in access exclusive mode`);
    const batcher = createRegisterBatcher({ db: env.db, published: () => {}, maxInFlight: 1, maxQueued: 2 });
    const now = new Date();
    const make = (name: string) => registerUser({ email: `${name}-${uuidv7().slice(-8)}@example.com`, name }, { id: uuidv7(), now });
    const [inFlight, q1, q2, over] = ["held", "q1", "q2", "over"].map(make);
    let released = false;
    let waiting: ReturnType<typeof batcher.register>[] = [];
    try {
      waiting = [inFlight!, q1!, q2!].map((r) => batcher.register(r.user, r.event));
      await expect(batcher.register(over!.user, over!.event)).rejects.toMatchObject({ status: 503, name: "ServiceUnavailableError" });
      await lock.release();
      released = true;
      expect(await Promise.all(waiting)).toEqual(["created", "created", "created"]);
    } finally {
      // A failed assertion must not leave the users table locked and the queued registrations hanging.
      if (!released) {
        await lock.release();
        await Promise.allSettled(waiting);
      }
    }
  });
});
