import type { Hono } from "hono";

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
  evaluate(): Promise<{ ready: boolean; checks: Record<string, string> }>;
}

export function createReadiness({ timeoutMs = 1000 }: { timeoutMs?: number } = {}): Readiness {
  const checks: ReadinessCheck[] = [];
  let shuttingDown = false;
  const withTimeout = (p: Promise<void>) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      p.then(resolve, reject).finally(() => clearTimeout(t));
    });
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
            await withTimeout(Promise.resolve().then(() => c.check()));
            return [c.name, "ok"] as const;
          } catch (err) {
            return [c.name, (err as Error).message || "failing"] as const;
          }
        }),
      );
      const out: Record<string, string> = Object.fromEntries(results);
      if (shuttingDown) out.shutdown = "shutting down";
      return { ready: !shuttingDown && results.every(([, r]) => r === "ok"), checks: out };
    },
  };
}

/**
 * `/healthz`: the process is alive (no dependency checks, so a database outage never gets pods
 * restarted). `/readyz`: every check passes; otherwise 503 with the failing checks.
 */
export function registerHealthRoutes(app: Hono<any>, readiness: Readiness): void {
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const { ready, checks } = await readiness.evaluate();
    if (ready) return c.json({ status: "ready", checks });
    return c.json({ status: "not ready", checks }, 503);
  });
}
