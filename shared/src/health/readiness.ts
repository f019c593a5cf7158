import type { Hono } from "hono";
import { within } from "../lifecycle/within.js";

/**
 * Thrown by a check whose dependency is down while the service can still do its job without it:
 * reported on /readyz, but the service stays ready (in the load balancer's rotation).
 */
export class Degraded extends Error {
  override name = "Degraded";
}

export interface ReadinessCheck {
  name: string;
  /** Resolves when healthy; throws (or rejects) with the reason otherwise. */
  check(): Promise<void> | void;
}

export interface Readiness {
  add(check: ReadinessCheck): void;
  /** From now on the service reports 503 so load balancers stop sending traffic. */
  markShuttingDown(): void;
  readonly shuttingDown: boolean;
  /** The service's own state changed (start-up finished): an answer shared from before is stale. */
  invalidate(): void;
  /** Counts invalidate() calls, so a cached answer can tell it is from before one. */
  readonly generation: number;
  evaluate(): Promise<{ ready: boolean; degraded: boolean; checks: Record<string, string> }>;
}

export function createReadiness({ timeoutMs = 1000 }: { timeoutMs?: number } = {}): Readiness {
  const checks: ReadinessCheck[] = [];
  let shuttingDown = false;
  let generation = 0;
  return {
    add: (c) => void checks.push(c),
    markShuttingDown: () => void (shuttingDown = true),
    get shuttingDown() {
      return shuttingDown;
    },
    invalidate: () => void generation++,
    get generation() {
      return generation;
    },
    async evaluate() {
      const results = await Promise.all(
        checks.map(async (c) => {
          try {
            await within(Promise.resolve().then(() => c.check()), timeoutMs);
            return [c.name, "ok", "ok"] as const;
          } catch (err) {
            return [c.name, (err as Error).message || "failing", err instanceof Degraded ? "degraded" : "failing"] as const;
          }
        }),
      );
      const out: Record<string, string> = Object.fromEntries(results.map(([name, message]) => [name, message]));
      if (shuttingDown) out.shutdown = "shutting down";
      return { ready: !shuttingDown && results.every(([, , state]) => state !== "failing"), degraded: results.some(([, , state]) => state === "degraded"), checks: out };
    },
  };
}

/**
 * `/healthz`: the process is alive (no dependency checks, so a database outage never gets pods
 * restarted). `/readyz`: 200 when no check fails (`"status": "degraded"` when one reports a
 * dependency the service can do without for now); otherwise 503 with the failing checks.
 */
export function registerHealthRoutes(app: Hono<any>, readiness: Readiness, { reuseMs = 500 }: { reuseMs?: number } = {}): void {
  // /readyz may be reachable from outside (the chart's Ingress sends every path no other service
  // claims to the event log): callers share one evaluation, reused for `reuseMs`, so a flood of
  // probes is not a flood of queries. Not across invalidate(): reused, the 503 a starting service
  // gave just before its start-up finished delayed its readiness by up to 500 ms (measured ~0.4 s).
  let last: { at: number; generation: number; result: ReturnType<Readiness["evaluate"]> } | undefined;
  const evaluate = () => {
    if (!last || Date.now() - last.at >= reuseMs || last.generation !== readiness.generation || readiness.shuttingDown) {
      last = { at: Date.now(), generation: readiness.generation, result: readiness.evaluate() };
    }
    return last.result;
  };
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const { ready, degraded, checks } = await evaluate();
    if (ready) return c.json({ status: degraded ? "degraded" : "ready", checks });
    return c.json({ status: "not ready", checks }, 503);
  });
}
