import { OUTBOX_COLUMNS, ServiceUnavailableError, jsonRows, outboxMessage, outboxRow, prepared, type CloudEvent, type Db, type OutboxMessage, type UserRegistered } from "@orderflow/shared";
import type { UserRow } from "../db/schema.js";

/**
 * One statement, so one round trip and its own transaction: insert the users (a taken email is
 * skipped), and an outbox row for each user actually inserted, in request order.
 */
const REGISTER = `with input as (
  select * from json_to_recordset($1::text::json)
    as r(n int, id uuid, email text, name text, user_created_at timestamptz, event_id uuid, subject text, payload text, headers jsonb)
), created as (
  insert into users (id, email, name, created_at)
  select id, email, name, user_created_at from input order by n
  on conflict do nothing
  returning id
), queued as (
  insert into outbox (${OUTBOX_COLUMNS})
  select i.event_id, i.subject, i.payload, i.headers from input i join created c on c.id = i.id order by i.n
)
select id from created`;

const REGISTERED = "select id from users where id = any(array(select value::uuid from json_array_elements_text($1::text::json)))";

export type RegisterOutcome = "created" | "duplicate";

export interface RegisterBatcher {
  /** Resolves once the user and its event are committed ("created"), or the email was taken. */
  register(user: UserRow, event: CloudEvent<UserRegistered>, headers?: Record<string, string>): Promise<RegisterOutcome>;
}

interface Pending {
  user: UserRow;
  /** The event's outbox row, serialized once: written by the statement, then handed over. */
  outbox: ReturnType<typeof outboxRow>;
  resolve(outcome: RegisterOutcome): void;
  reject(err: unknown): void;
}

/**
 * Group commit for registrations: concurrent requests share one transaction (one statement
 * inserting the users and their outbox rows, one commit), each with its own outcome. A taken email
 * is skipped by `ON CONFLICT DO NOTHING` and answers "duplicate" for that request alone. No
 * timer: a request that finds a free slot commits at once; ones arriving meanwhile form the next
 * batch. A batch that fails for another reason is retried one registration at a time, so one
 * bad row cannot fail its neighbours. Past `maxQueued` waiting registrations (a database that
 * stopped answering without refusing connections) a new one is a 503 at once instead of one more
 * request held in memory for as long as the outage lasts.
 */
export function createRegisterBatcher({
  db,
  published,
  maxBatch = 256,
  maxInFlight = 2,
  maxQueued = 4096,
}: {
  db: Db;
  published: (messages: OutboxMessage[]) => void;
  maxBatch?: number;
  maxInFlight?: number;
  maxQueued?: number;
}): RegisterBatcher {
  const queue: Pending[] = [];
  let inFlight = 0;

  async function commit(batch: Pending[], retrying: boolean): Promise<Set<string>> {
    const rows = batch.map((p) => ({ id: p.user.id, email: p.user.email, name: p.user.name, user_created_at: p.user.createdAt, ...p.outbox }));
    const created = new Set((await prepared<{ id: string }>(db, REGISTER, [jsonRows(rows)])).map((r) => r.id));
    if (retrying && created.size < batch.length) {
      // The failed batch may have committed after all (a connection lost during COMMIT): a row
      // with this request's own id is its registration, not someone else's email.
      const missing = batch.filter((p) => !created.has(p.user.id)).map((p) => p.user.id);
      for (const r of await prepared<{ id: string }>(db, REGISTERED, [JSON.stringify(missing)])) created.add(r.id);
    }
    return created;
  }

  async function run(batch: Pending[], retrying = false): Promise<void> {
    try {
      const created = await commit(batch, retrying);
      if (created.size > 0) published(batch.filter((p) => created.has(p.user.id)).map((p) => outboxMessage(p.outbox)));
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
    register(user, event, headers) {
      if (queue.length >= maxQueued) return Promise.reject(new ServiceUnavailableError(`${queue.length} registrations are waiting for the database; retry shortly`));
      return new Promise<RegisterOutcome>((resolve, reject) => {
        queue.push({ user, outbox: outboxRow("users.registered", event, headers), resolve, reject });
        flush();
      });
    },
  };
}
