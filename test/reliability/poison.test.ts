import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { createEvent, createNames, DlqHeaders, uuidv7 } from "@orderflow/shared";
import { repoRoot, startProcess, startSystem, testNatsUrl, waitFor, type TestSystem } from "@orderflow/shared/testing";
import { getDeadLetter, listDeadLetters, replayDeadLetter, type DeadLetter } from "../../shared/src/cli/dead-letters.js";
import { getUser, ordersOf, registerOk, waitForWelcome } from "../system/helpers.js";
import { report, sqlClient } from "./helpers.js";

// Slow retries make "does not wait" visible: the always-failing event needs ~20 s to reach the
// DLQ (3 deliveries, 10 s apart), and the events behind it must be applied within 10 s, long
// before that even on a slow host.
const MAX_DELIVER = 3;
let sys: TestSystem;
beforeAll(async () => {
  sys = await startSystem({ env: { MAX_DELIVER: String(MAX_DELIVER), RETRY_DELAYS_MS: "10000" } });
});
afterAll(() => sys?.cleanup());

const dlqCli = join(repoRoot, "shared", "dist", "cli", "dlq.js");
async function runCli(args: string[]) {
  const proc = startProcess(dlqCli, args, { NATS_URL: testNatsUrl(), NATS_NAMESPACE: sys.namespace });
  const exit = await proc.exitWithin(30_000);
  return { code: exit.code, output: proc.output.join("\n") };
}

describe("poison messages", () => {
  it("go to the DLQ with their headers, do not block later events, and a fixed one replays once", async () => {
    const { "user-service": users, "order-service": orders } = sys.services;
    const names = createNames(sys.namespace);
    const js = jetstream(sys.nc);
    const jsm = await jetstreamManager(sys.nc);
    const deps = { js, jsm, names };
    const userDb = sqlClient(users.database.url);
    const orderDb = sqlClient(orders.database.url);
    try {
      // The order database rejects one user's customer row, whatever the delivery: a handler that always throws.
      const stuck = uuidv7();
      await orderDb.unsafe(`
        create function reject_stuck_user() returns trigger language plpgsql as $$
        begin
          if new.user_id = '${stuck}' then raise exception 'test: customer % is rejected', new.user_id; end if;
          return new;
        end $$;
        create trigger reject_stuck_user before insert on customers for each row execute function reject_stuck_user();`);

      const registered = (userId: string, over: Record<string, unknown> = {}) => ({
        ...createEvent({ name: "users.registered", source: "/test", subject: userId, data: { userId, email: `${userId}@example.com`, name: "Poison", registeredAt: new Date().toISOString() } }),
        ...over,
      });
      const ghost = uuidv7(); // a user the user service never registered
      const refused = uuidv7();
      const poison: { label: string; subject: string; body: string; errorClass: RegExp }[] = [
        { label: "invalid JSON", subject: "users.registered", body: "{not json", errorClass: /^InvalidEventError$/ },
        { label: "wrong schema", subject: "users.registered", body: JSON.stringify(registered(uuidv7(), { data: { userId: "nope" } })), errorClass: /^InvalidEventError$/ },
        { label: "unknown version", subject: "users.registered", body: JSON.stringify(registered(uuidv7(), { type: "io.orderflow.user.registered.v9" })), errorClass: /^UnknownEventTypeError$/ },
        { label: "unknown type", subject: "users.registered", body: JSON.stringify(registered(uuidv7(), { type: "io.orderflow.user.deleted.v1" })), errorClass: /^UnknownEventTypeError$/ },
        {
          label: "unknown user (permanent)",
          subject: "orders.created",
          body: JSON.stringify(
            createEvent({ name: "orders.created", source: "/test", subject: ghost, data: { orderId: uuidv7(), userId: ghost, status: "created", source: "api", items: [], totalCents: 0, createdAt: new Date().toISOString() } }),
          ),
          errorClass: /^PermanentError$/,
        },
        {
          // A valid string that Postgres cannot store (a NUL in text): it would fail on every delivery.
          label: "value the database refuses (permanent)",
          subject: "users.registered",
          body: JSON.stringify(registered(refused, { data: { userId: refused, email: `${refused}@example.com`, name: "Poi\u0000son", registeredAt: new Date().toISOString() } })),
          errorClass: /^PostgresError$/,
        },
        { label: "always throws (transient)", subject: "users.registered", body: JSON.stringify(registered(stuck)), errorClass: /./ },
      ];
      const published: { seq: number; msgId: string; label: string }[] = [];
      for (const p of poison) {
        const h = natsHeaders();
        h.set("X-Test-Label", p.label);
        const msgId = uuidv7();
        const ack = await js.publish(names.subject(p.subject), p.body, { msgID: msgId, headers: h });
        published.push({ seq: ack.seq, msgId, label: p.label });
      }

      // Published after the poison: applied at once, while the transient one is still being retried.
      const t0 = Date.now();
      const after = await Promise.all([registerOk(users.url), registerOk(users.url), registerOk(users.url)]);
      await Promise.all(after.map((u) => waitForWelcome(orders.url, u.id, 10_000)));
      const behindMs = Date.now() - t0;
      const dlqWhenApplied = await listDeadLetters(deps);
      expect(dlqWhenApplied.some((d) => d.errorMessage.includes(stuck))).toBe(false);

      // All of them end up in the DLQ, each with its original payload and headers and the reason.
      const letters = await waitFor(async () => {
        const l = await listDeadLetters(deps);
        return l.length === poison.length ? l : undefined;
      }, { what: "every poison message dead-lettered", timeoutMs: 30_000 });
      const byLabel = new Map<string, DeadLetter>(letters.map((d) => [new Map(d.headers).get("X-Test-Label")!, d]));
      for (const [i, p] of poison.entries()) {
        const d = byLabel.get(p.label);
        expect(d, p.label).toBeDefined();
        const h = new Map(d!.headers);
        expect(Buffer.from(d!.payload).toString("utf8")).toBe(p.body);
        expect(d!.subject).toBe(p.subject);
        expect(h.get(DlqHeaders.OriginalMsgId)).toBe(published[i]!.msgId);
        expect(h.get(DlqHeaders.Stream)).toBe(names.stream(p.subject === "orders.created" ? "ORDERS" : "USERS"));
        expect(h.get(DlqHeaders.Subject)).toBe(names.subject(p.subject));
        expect(Number(h.get(DlqHeaders.Sequence))).toBe(published[i]!.seq);
        expect(h.get(DlqHeaders.Consumer)).toBe(p.subject === "orders.created" ? "user-service" : "order-service");
        expect(d!.errorClass).toMatch(p.errorClass);
        expect(d!.errorMessage.length).toBeGreaterThan(0);
        expect(Number.isNaN(Date.parse(h.get(DlqHeaders.Time)!))).toBe(false);
        // Permanent failures are not retried; the transient one is given up on its last delivery.
        expect(d!.deliveries).toBe(p.label.startsWith("always") ? MAX_DELIVER : 1);
      }
      expect(byLabel.get("always throws (transient)")!.errorMessage).toContain(stuck);
      expect(byLabel.get("value the database refuses (permanent)")!.errorMessage).toMatch(/^22P05: unsupported Unicode escape sequence/);

      // `dlq list` as a real process shows them all.
      const list = await runCli(["list"]);
      expect(list.code).toBe(0);
      expect(list.output).toContain(`${poison.length} dead letter(s)`);
      const show = await runCli(["show", String(byLabel.get("wrong schema")!.seq)]);
      expect(show.code).toBe(0);
      expect(show.output).toMatch(/Orderflow-Dlq-Error-Class\s+InvalidEventError/);

      // Fix the cause, then replay: the stuck user's welcome order is created exactly once.
      await orderDb.unsafe(`drop trigger reject_stuck_user on customers`);
      const stuckLetter = byLabel.get("always throws (transient)")!;
      const replay = await replayDeadLetter(deps, stuckLetter.seq);
      expect(replay.msgId).toMatch(new RegExp(`^replay:${stuckLetter.seq}:`));
      await waitForWelcome(orders.url, stuck, 15_000);
      await expect(getDeadLetter(deps, stuckLetter.seq)).rejects.toThrow(/no dead letter/);
      // A second copy (e.g. a replay retried after a crash before the delete) changes nothing.
      await js.publish(stuckLetter.originalSubject, stuckLetter.payload, { msgID: `replay:${stuckLetter.seq}:again` });

      // The permanent one, fixed by making its user exist, replayed through the CLI process.
      await userDb`insert into users (id, email, name, order_count, created_at) values (${ghost}, ${`${ghost}@example.com`}, 'Ghost', 0, now())`;
      const cliReplay = await runCli(["replay", String(byLabel.get("unknown user (permanent)")!.seq)]);
      expect(cliReplay.code).toBe(0);
      await waitFor(async () => (await getUser(users.url, ghost)).orderCount === 1, { what: "ghost's orderCount 1" });

      // Wait until the second copy has been consumed, then count.
      await waitFor(async () => {
        const info = await jsm.consumers.info(names.stream("USERS"), names.durable("order-service"));
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, { what: "order-service caught up" });
      const stuckWelcomes = (await ordersOf(orders.url, stuck)).filter((o) => o.source === "registration").length;
      const [inboxRows] = await orderDb<{ n: number }[]>`select count(*)::int as n from inbox where event_id = ${(JSON.parse(Buffer.from(stuckLetter.payload).toString("utf8")) as { id: string }).id}`;
      expect(stuckWelcomes).toBe(1);
      expect(inboxRows!.n).toBe(1);
      // Purge the rest: the DLQ ends empty.
      // The stuck user's welcome order is an orders.created for a user the user service never
      // registered (the test published the registration itself): that one is dead-lettered too.
      const welcomeOfStuck = (d: DeadLetter) => d.subject === "orders.created" && (JSON.parse(Buffer.from(d.payload).toString("utf8")) as { data: { userId: string } }).data.userId === stuck;
      await waitFor(async () => (await listDeadLetters(deps)).some(welcomeOfStuck), { what: "the stuck user's welcome order dead-lettered by user-service" });
      const rest = await listDeadLetters(deps);
      expect(rest).toHaveLength(poison.length - 2 + 1); // all but the two replayed, and that one
      expect(rest.filter(welcomeOfStuck)).toHaveLength(1);
      for (const d of rest) expect((await runCli(["purge", String(d.seq)])).code).toBe(0);
      expect(await listDeadLetters(deps)).toEqual([]);
      const missing = await runCli(["show", String(stuckLetter.seq)]);
      expect(missing.code).toBe(1);
      expect(missing.output).toContain(`no dead letter with sequence ${stuckLetter.seq}`);

      report("poison messages", {
        sent: poison.length + after.length,
        accepted: after.length,
        applied: after.length + 2,
        deadLettered: letters.length,
        duplicates: stuckWelcomes - 1,
        replayed: 2,
        appliedBehindPoisonMs: behindMs,
        transientErrorClass: stuckLetter.errorClass,
      });
    } finally {
      await Promise.all([userDb.end(), orderDb.end()]);
    }
  }, 120_000);
});
