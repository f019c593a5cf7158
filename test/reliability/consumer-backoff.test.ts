import { afterAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { createEvent, createNames, uuidv7 } from "@orderflow/shared";
import { startSystem, waitFor, type TestSystem } from "@orderflow/shared/testing";
import { registerOk } from "../system/helpers.js";
import { readLedger, report, sqlClient, streamMessages } from "./helpers.js";

let sys: TestSystem | undefined;
afterAll(() => sys?.cleanup());

// Regression test. The durable consumer used to carry `backoff = RETRY_DELAYS_MS`, which on the
// server replaces ack_wait for every delivery: messages waiting in the client's pull buffer
// behind one slow handler were redelivered on that short schedule until max_deliver was spent,
// and the server then stopped delivering them without any dead letter; a kill lost them for
// good (20 of 20 here). Now the durable has no backoff and no server-side max_deliver; the
// runner keeps the budget itself (streams.ts ensureDurableConsumer, runner.ts deliveryCap).
// One orders.created is dead-lettered by design: the slow user was published straight to NATS,
// so user-service does not know it.
describe("consumer backoff", () => {
  it("buffered messages survive a slow handler followed by kill -9", async () => {
    sys = await startSystem();
    const { "user-service": users, "order-service": orders } = sys.services;
    const names = createNames(sys.namespace);
    const jsm = await jetstreamManager(sys.nc);
    const orderDb = sqlClient(orders.database.url);
    try {
      // One slow write (6 s, longer than 200+500+1000+1000 ms) holds the consumer while others queue behind it.
      const slow = uuidv7();
      await orderDb.unsafe(`
        create function slow_user() returns trigger language plpgsql as $$
        begin
          if new.user_id = '${slow}' then perform pg_sleep(6); end if;
          return new;
        end $$;
        create trigger slow_user before insert on customers for each row execute function slow_user();`);
      const event = createEvent({ name: "users.registered", source: "/test", subject: slow, data: { userId: slow, email: `${slow}@example.com`, name: "Slow", registeredAt: new Date().toISOString() } });
      await jetstream(sys.nc).publish(names.subject("users.registered"), JSON.stringify(event), { msgID: event.id });
      const behind = await Promise.all(Array.from({ length: 20 }, () => registerOk(users.url)));

      // The scenario itself: a handler stuck for longer than the whole backoff schedule
      // (200+500+1000+1000 ms), with events queued behind it, then a crash.
      // Observed, not timed: the handler's statement has been in pg_sleep for over 4 s (a slow
      // host could otherwise reach the kill after the sleep ended) and events wait behind it.
      await waitFor(
        async () => {
          const [held] = await orderDb.unsafe<{ n: number }[]>(
            `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event = 'PgSleep' and now() - query_start > interval '4 seconds'`,
          );
          if (!held?.n) return false;
          const info = await jsm.consumers.info(names.stream("USERS"), names.durable("order-service"));
          return info.num_ack_pending + info.num_pending > 1;
        },
        { what: "the slow handler to hold the consumer for 4 s with events behind it", timeoutMs: 20_000 },
      );
      await orders.proc.kill("SIGKILL");
      await orderDb.unsafe(`drop trigger slow_user on customers`);
      await orders.restart();
      // Done when every queued event is applied, or when the consumer has nothing left to
      // deliver (pending and unacknowledged both 0) — which, with events missing, is the loss.
      await waitFor(async () => {
        const ledger = await readLedger(sys!);
        if (behind.every((u) => ledger.welcomes.get(u.id) === 1)) return true;
        const info = await jsm.consumers.info(names.stream("USERS"), names.durable("order-service"));
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, { what: "queued events applied or the consumer idle", timeoutMs: 75_000, intervalMs: 250 });
      const ledger = await readLedger(sys);
      const welcomed = behind.filter((u) => (ledger.welcomes.get(u.id) ?? 0) === 1).length;
      report("buffered messages, slow handler, kill -9", {
        sent: behind.length + 1,
        accepted: behind.length,
        applied: welcomed,
        deadLettered: await streamMessages(sys.nc, sys.namespace, "DLQ"),
        duplicates: behind.filter((u) => (ledger.welcomes.get(u.id) ?? 0) > 1).length,
        lostSilently: behind.length - welcomed,
      });
      expect(welcomed).toBe(behind.length);
    } finally {
      await orderDb.end();
    }
  }, 120_000);
});
