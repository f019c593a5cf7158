import { enqueueEvents, type CloudEvent, type Db, type UserRegistered } from "@orderflow/shared";
import { inArray } from "drizzle-orm";
import { users, type UserRow } from "../db/schema.js";

export type RegisterOutcome = "created" | "duplicate";

export interface RegisterBatcher {
  /** Resolves once the user and its event are committed ("created"), or the email was taken. */
  register(user: UserRow, event: CloudEvent<UserRegistered>): Promise<RegisterOutcome>;
}

interface Pending {
  user: UserRow;
  event: CloudEvent<UserRegistered>;
  resolve(outcome: RegisterOutcome): void;
  reject(err: unknown): void;
}

/**
 * Group commit for registrations: concurrent requests share one transaction (a multi-row user
 * insert and a multi-row outbox insert, one commit), each with its own outcome. A taken email
 * is skipped by `ON CONFLICT DO NOTHING` and answers "duplicate" for that request alone. No
 * timer: a request that finds a free slot commits at once; ones arriving meanwhile form the next
 * batch. A batch that fails for another reason is retried one registration at a time, so one
 * bad row cannot fail its neighbours.
 */
export function createRegisterBatcher({ db, published, maxBatch = 256, maxInFlight = 2 }: { db: Db; published: () => void; maxBatch?: number; maxInFlight?: number }): RegisterBatcher {
  const queue: Pending[] = [];
  let inFlight = 0;

  async function commit(batch: Pending[], retrying: boolean): Promise<Set<string>> {
    return db.transaction(async (tx) => {
      const rows = await tx.insert(users).values(batch.map((p) => p.user)).onConflictDoNothing().returning({ id: users.id });
      const created = new Set(rows.map((r) => r.id));
      await enqueueEvents(tx, batch.filter((p) => created.has(p.user.id)).map((p) => ({ subject: "users.registered", event: p.event })));
      if (retrying && created.size < batch.length) {
        // The failed batch may have committed after all (a connection lost during COMMIT): a row
        // with this request's own id is its registration, not someone else's email.
        const missing = batch.filter((p) => !created.has(p.user.id)).map((p) => p.user.id);
        for (const r of await tx.select({ id: users.id }).from(users).where(inArray(users.id, missing))) created.add(r.id);
      }
      return created;
    });
  }

  async function run(batch: Pending[], retrying = false): Promise<void> {
    try {
      const created = await commit(batch, retrying);
      if (created.size > 0) published();
      for (const p of batch) p.resolve(created.has(p.user.id) ? "created" : "duplicate");
    } catch (err) {
      if (batch.length === 1) return batch[0]!.reject(err);
      for (const p of batch) await run([p], true);
    }
  }

  function flush() {
    while (inFlight < maxInFlight && queue.length > 0) {
      inFlight += 1;
      void run(queue.splice(0, maxBatch)).finally(() => {
        inFlight -= 1;
        flush();
      });
    }
  }

  return {
    register(user, event) {
      return new Promise<RegisterOutcome>((resolve, reject) => {
        queue.push({ user, event, resolve, reject });
        flush();
      });
    },
  };
}
