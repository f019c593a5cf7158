import { expect } from "vitest";
import postgres from "postgres";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { createNames } from "@orderflow/shared";
import { waitFor, type TestSystem } from "@orderflow/shared/testing";

export interface User {
  id: string;
  email: string;
  orderCount: number;
}
export interface Order {
  id: string;
  userId: string;
  source: string;
  totalCents: number;
}

export const email = () => `u${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}@example.com`;

export async function register(userUrl: string, init: { email?: string; name?: string } = {}): Promise<Response> {
  return fetch(`${userUrl}/users`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: init.email ?? email(), name: init.name ?? "Test User" }),
  });
}

export async function registerOk(userUrl: string): Promise<User> {
  const res = await register(userUrl);
  expect(res.status).toBe(201);
  return (await res.json()) as User;
}

export async function ordersOf(orderUrl: string, userId: string): Promise<Order[]> {
  const res = await fetch(`${orderUrl}/orders?userId=${userId}&limit=100`);
  if (res.status !== 200) throw new Error(`GET /orders answered ${res.status}`);
  return ((await res.json()) as { items: Order[] }).items;
}

export async function getUser(userUrl: string, id: string): Promise<User> {
  const res = await fetch(`${userUrl}/users/${id}`);
  if (res.status !== 200) throw new Error(`GET /users/${id} answered ${res.status}`);
  return (await res.json()) as User;
}

export const waitForWelcome = (orderUrl: string, userId: string, timeoutMs = 20_000) =>
  waitFor(async () => {
    const orders = await ordersOf(orderUrl, userId);
    return orders.some((o) => o.source === "registration") ? orders : undefined;
  }, { what: `welcome order of ${userId}`, timeoutMs });

export const waitForCount = (userUrl: string, userId: string, count: number, timeoutMs = 20_000) =>
  waitFor(async () => ((await getUser(userUrl, userId)).orderCount === count ? true : undefined), {
    what: `orderCount ${count} for ${userId}`,
    timeoutMs,
  });

/** A one-connection client to a service database, for reading what was really applied. */
export function sqlClient(url: string) {
  return postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
}

/** Rows still waiting in the two outboxes: events committed but not yet acknowledged by the broker. */
export async function unpublishedEvents(sys: TestSystem): Promise<number> {
  const dbs = [sys.services["user-service"], sys.services["order-service"]].map((s) => sqlClient(s.database.url));
  try {
    const counts = await Promise.all(dbs.map(async (sql) => (await sql<{ n: number }[]>`select count(*)::int as n from outbox`)[0]!.n));
    return counts.reduce((a, b) => a + b, 0);
  } finally {
    await Promise.all(dbs.map((sql) => sql.end()));
  }
}

/**
 * Waits until both outboxes are empty and both durables have nothing pending or unacked: an
 * orderCount read after it is final (no event still on its way), so a loss or a duplicate would
 * show. Both halves matter: a consumer is idle too while its events still sit in an outbox.
 */
export async function waitSettled(sys: TestSystem, nc: NatsConnection = sys.nc, timeoutMs = 60_000): Promise<void> {
  const names = createNames(sys.namespace);
  await waitFor(
    async () => {
      // Inside the probe: right after a broker restart the JetStream API may time out once.
      const jsm = await jetstreamManager(nc);
      if ((await unpublishedEvents(sys)) > 0) return false;
      for (const [stream, durable] of [["USERS", "order-service"], ["ORDERS", "user-service"]] as const) {
        const info = await jsm.consumers.info(names.stream(stream), names.durable(durable));
        if (info.num_pending > 0 || info.num_ack_pending > 0) return false;
      }
      return true;
    },
    { what: "outboxes drained and consumers caught up", timeoutMs, intervalMs: 250 },
  );
}
