import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { createNames, DlqHeaders } from "@orderflow/shared";
import { waitFor, type TestSystem } from "@orderflow/shared/testing";
import { email, sqlClient } from "../system/helpers.js";

export { sqlClient, waitSettled } from "../system/helpers.js";

/**
 * What a reliability test proves, printed as one line so a reader of the run sees it: measured
 * figures only (or ones the test asserted before it reports), never a constant that would read
 * as evidence and stay the same if the behaviour changed.
 */
export interface Counts {
  sent: number;
  accepted: number;
  [more: string]: number | string;
}

export function report(test: string, counts: Counts): void {
  const line = Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(" ");
  console.log(`[reliability] ${test}: ${line}`);
}

/**
 * A stream of registrations from `workers` concurrent clients until `stop()`. Records the ids
 * that got a 201, and counts other answers and network errors (a killed service) separately:
 * a request whose answer was lost may or may not have committed.
 */
export function registrationLoad(userUrls: string[] | (() => string[]), { workers = 4 } = {}) {
  const urls = typeof userUrls === "function" ? userUrls : () => userUrls;
  const accepted: string[] = [];
  const statuses = new Map<number, number>();
  let sent = 0;
  let networkErrors = 0;
  let stopped = false;
  let turn = 0;
  const worker = async () => {
    while (!stopped) {
      const list = urls();
      const url = list[turn++ % list.length]!;
      sent += 1;
      try {
        const res = await fetch(`${url}/users`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ email: email(), name: "Load User" }),
          signal: AbortSignal.timeout(10_000),
        });
        const body = (await res.json().catch(() => ({}))) as { id?: string };
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 201 && body.id) accepted.push(body.id);
        // A 503 while a dependency is down: back off a little instead of spinning.
        if (res.status >= 500) await new Promise((r) => setTimeout(r, 50));
      } catch {
        networkErrors += 1;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const running = Promise.all(Array.from({ length: workers }, worker));
  return {
    accepted,
    get sent() {
      return sent;
    },
    get networkErrors() {
      return networkErrors;
    },
    statuses,
    /**
     * Answers other than 201 and the 503 of a dependency or a replica going away, as
     * `{status: count}`: a 500 during a fault is a bug even when no event was lost.
     */
    unexpectedStatuses: () => Object.fromEntries([...statuses].filter(([s]) => s !== 201 && s !== 503)),
    /** Resolves once `accepted` has grown by `n` from now. */
    more: (n: number, timeoutMs = 30_000) => {
      const target = accepted.length + n;
      return waitFor(() => accepted.length >= target, { what: `${n} more registrations`, timeoutMs });
    },
    async stop() {
      stopped = true;
      await running;
    },
  };
}

export interface Ledger {
  /** Users committed in the user database. */
  users: Set<string>;
  /** Sum of users.order_count (orders.created applied by user-service). */
  orderCounts: Map<string, number>;
  /** Customers the order service learned of. */
  customers: Set<string>;
  /** Welcome orders per user. */
  welcomes: Map<string, number>;
  /** Inbox rows of each consumer. */
  userInbox: number;
  orderInbox: number;
  unpublished: number;
}

/** Reads both databases: what was committed, what was applied, what is still in an outbox. */
export async function readLedger(sys: TestSystem): Promise<Ledger> {
  const u = sqlClient(sys.services["user-service"].database.url);
  const o = sqlClient(sys.services["order-service"].database.url);
  try {
    const users = await u<{ id: string; order_count: number }[]>`select id, order_count from users`;
    const customers = await o<{ user_id: string }[]>`select user_id from customers`;
    const welcomes = await o<{ user_id: string; n: number }[]>`select user_id, count(*)::int as n from orders where source = 'registration' group by user_id`;
    const [ui] = await u<{ n: number }[]>`select count(*)::int as n from inbox`;
    const [oi] = await o<{ n: number }[]>`select count(*)::int as n from inbox`;
    const [uo] = await u<{ n: number }[]>`select count(*)::int as n from outbox`;
    const [oo] = await o<{ n: number }[]>`select count(*)::int as n from outbox`;
    return {
      users: new Set(users.map((r) => r.id)),
      orderCounts: new Map(users.map((r) => [r.id, r.order_count])),
      customers: new Set(customers.map((r) => r.user_id)),
      welcomes: new Map(welcomes.map((r) => [r.user_id, r.n])),
      userInbox: ui!.n,
      orderInbox: oi!.n,
      unpublished: uo!.n + oo!.n,
    };
  } finally {
    await Promise.all([u.end(), o.end()]);
  }
}

/** Number of messages in a namespaced stream (e.g. USERS holds one users.registered per user). */
export async function streamMessages(nc: NatsConnection, namespace: string, stream: string): Promise<number> {
  // Retried: right after a broker restart or failover the JetStream API can time out once.
  return waitFor(async () => {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(createNames(namespace).stream(stream))).state.messages;
  }, { what: `message count of ${stream}`, timeoutMs: 20_000, intervalMs: 250 });
}

/**
 * Checks the promise of the whole system over a finished run and returns the counts:
 * every accepted registration committed; the users the order service knows are exactly the
 * committed ones; each has exactly one welcome order and an orderCount of exactly 1.
 */
export function checkExactlyOnce(ledger: Ledger, accepted: readonly string[]) {
  const missingAccepted = accepted.filter((id) => !ledger.users.has(id));
  const unknownCustomers = [...ledger.customers].filter((id) => !ledger.users.has(id));
  const withoutWelcome = [...ledger.users].filter((id) => (ledger.welcomes.get(id) ?? 0) === 0);
  const duplicateWelcomes = [...ledger.welcomes.values()].filter((n) => n > 1).length;
  const wrongCounts = [...ledger.orderCounts.values()].filter((n) => n !== 1).length;
  return { missingAccepted, unknownCustomers, withoutWelcome, duplicateWelcomes, wrongCounts };
}

/**
 * What the DLQ of a namespace holds, one line per message (subject, consumer, deliveries and
 * the error recorded when it was dead-lettered): printed by a failing run to say why.
 */
export async function deadLetters(nc: NatsConnection, namespace: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const stream = createNames(namespace).stream("DLQ");
  const { state } = await jsm.streams.info(stream);
  const lines: string[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
    if (!m) continue;
    const h = (k: string) => m.header?.get(k) ?? "";
    lines.push(`${m.subject} deliveries=${h(DlqHeaders.Deliveries)} ${h(DlqHeaders.ErrorClass)}: ${h(DlqHeaders.ErrorMessage)}`);
  }
  return lines;
}
