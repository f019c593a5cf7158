import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createReadiness, Degraded, registerHealthRoutes } from "./readiness.js";

const readyz = async (app: Hono) => {
  const res = await app.request("/readyz");
  return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, string> } };
};

describe("readiness", () => {
  it("is 503 while a check fails, 200 'degraded' while one reports a dependency it can do without, and 503 once shutting down", async () => {
    const state = { database: "ok", nats: "ok" };
    const readiness = createReadiness({ timeoutMs: 200 });
    const unless = (Failure: new (m: string) => Error, message: string) => {
      if (message !== "ok") throw new Failure(message);
    };
    readiness.add({ name: "database", check: () => unless(Error, state.database) });
    readiness.add({ name: "nats", check: () => unless(Degraded, state.nats) });
    readiness.add({ name: "slow", check: () => new Promise<void>((resolve) => setTimeout(resolve, state.database === "slow" ? 1000 : 0)) });
    const app = new Hono();
    registerHealthRoutes(app, readiness, { reuseMs: 0 });

    expect(await readyz(app)).toEqual({ status: 200, body: { status: "ready", checks: { database: "ok", nats: "ok", slow: "ok" } } });
    state.nats = "disconnected";
    expect(await readyz(app)).toEqual({ status: 200, body: { status: "degraded", checks: { database: "ok", nats: "disconnected", slow: "ok" } } });
    state.database = "unreachable";
    expect(await readyz(app)).toEqual({ status: 503, body: { status: "not ready", checks: { database: "unreachable", nats: "disconnected", slow: "ok" } } });
    state.database = "slow";
    expect((await readyz(app)).body.checks.slow).toBe("no answer within 200 ms");
    state.database = "ok";
    state.nats = "ok";
    readiness.markShuttingDown();
    expect(await readyz(app)).toEqual({ status: 503, body: { status: "not ready", checks: { database: "ok", nats: "ok", slow: "ok", shutdown: "shutting down" } } });
    expect((await app.request("/healthz")).status).toBe(200);
  });

  it("answers concurrent and quick successive probes from one evaluation", async () => {
    let evaluations = 0;
    const readiness = createReadiness();
    readiness.add({ name: "database", check: () => void evaluations++ });
    const app = new Hono();
    registerHealthRoutes(app, readiness, { reuseMs: 60_000 });
    const answers = await Promise.all(Array.from({ length: 20 }, () => readyz(app)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(evaluations).toBe(1);
    // Shutting down is never answered from an earlier evaluation.
    readiness.markShuttingDown();
    expect((await readyz(app)).status).toBe(503);
  });

  it("answers anew once the service's own state changes (start-up finished), not from a 503 shared from before", async () => {
    let up = false;
    let evaluations = 0;
    const readiness = createReadiness();
    readiness.add({
      name: "start-up",
      check: () => {
        evaluations++;
        if (!up) throw new Error("starting");
      },
    });
    const app = new Hono();
    registerHealthRoutes(app, readiness, { reuseMs: 60_000 });
    expect((await readyz(app)).status).toBe(503);
    up = true;
    expect((await readyz(app)).status).toBe(503); // shared: nothing said the state changed
    readiness.invalidate();
    expect((await readyz(app)).status).toBe(200);
    expect((await readyz(app)).status).toBe(200);
    expect(evaluations).toBe(2);
  });
});
