import { expect } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
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

/**
 * Both pipelines' consumers have nothing left to deliver or settle: an orderCount read after it
 * is final (no increment still on its way), so a duplicate would show.
 */
export const waitConsumersIdle = (sys: TestSystem, timeoutMs = 30_000) =>
  waitFor(
    async () => {
      const jsm = await jetstreamManager(sys.nc);
      const names = createNames(sys.namespace);
      for (const [stream, durable] of [["USERS", "order-service"], ["ORDERS", "user-service"]] as const) {
        const info = await jsm.consumers.info(names.stream(stream), names.durable(durable));
        if (info.num_pending > 0 || info.num_ack_pending > 0) return false;
      }
      return true;
    },
    { what: "both consumers caught up", timeoutMs, intervalMs: 100 },
  );
