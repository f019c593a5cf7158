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
  evaluate(): Promise<{ ready: boolean; degraded: boolean; checks: Record<string, string> }>;
}

export function createReadiness({ timeoutMs = 1000 }: { timeoutMs?: number } = {}): Readiness {
  const checks: ReadinessCheck[] = [];
  let shuttingDown = false;
  return {
    add: (c) => void checks.push(c),
    markShuttingDown: () => void (shuttingDown = true),
    get shuttingDown() {
      return shuttingDown;
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
export function registerHealthRoutes(app: Hono<any>, readiness: Readiness, { reuseMs = 500, notReadyReuseMs = 25 }: { reuseMs?: number; notReadyReuseMs?: number } = {}): void {
  // /readyz may be reachable from outside (the event log's `/` route takes every path): callers
  // share one evaluation, reused for `reuseMs`, so a flood of probes is not a flood of queries.
  // A "not ready" answer is reused only briefly: reused for 500 ms, the probe a starting service
  // got before its checks passed delayed its readiness by up to that long (a measured ~0.4 s).
  let last: { at: number; result: ReturnType<Readiness["evaluate"]>; ready?: boolean } | undefined;
  const evaluate = () => {
    const age = last ? Date.now() - last.at : Infinity;
    const fresh = last && (last.ready === undefined || age < (last.ready ? reuseMs : notReadyReuseMs));
    if (!fresh || readiness.shuttingDown) {
      const entry: NonNullable<typeof last> = { at: Date.now(), result: readiness.evaluate() };
      entry.result.then((r) => (entry.ready = r.ready));
      last = entry;
    }
    return last!.result;
  };
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const { ready, degraded, checks } = await evaluate();
    if (ready) return c.json({ status: degraded ? "degraded" : "ready", checks });
    return c.json({ status: "not ready", checks }, 503);
  });
}
