import { describe, expect, it, onTestFinished } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { createNames } from "@orderflow/shared";
import { connectTestNats, freePort, startOwnNatsServer, startSystem, waitFor, type OwnNatsServer, type TestSystem } from "@orderflow/shared/testing";
import { checkExactlyOnce, readLedger, registrationLoad, report, streamMessages, waitSettled } from "./helpers.js";

/** `/readyz` as "<status> <nats check>", e.g. "200 ok". */
const readiness = async (url: string) => {
  const res = await fetch(`${url}/readyz`).catch(() => undefined);
  return res && `${res.status} ${((await res.json()) as { checks: Record<string, string> }).checks.nats}`;
};
const pids = (sys: TestSystem) => Object.values(sys.services).map((s) => s.proc.child.pid);
const alive = (sys: TestSystem) => Object.values(sys.services).every((s) => s.proc.child.exitCode === null && s.proc.child.signalCode === null);

describe("NATS faults", () => {
  it("a NATS server stopped and restarted (SIGTERM, then SIGKILL) during load: nothing lost, no service restarts", async () => {
    const nats: OwnNatsServer = await startOwnNatsServer();
    onTestFinished(() => nats.dispose());
    const sys = await startSystem({ natsUrl: nats.url });
    onTestFinished(() => sys.cleanup());
    const { "user-service": users, "order-service": orders } = sys.services;
    const before = pids(sys);
    const load = registrationLoad([users.url], { workers: 4 });
    let acceptedWhileDown = 0;
    try {
      for (const signal of ["SIGTERM", "SIGKILL"] as const) {
        await load.more(40);
        await nats.stop(signal);
        // Down, but still ready: NATS is reported, and the services stay in rotation.
        await waitFor(async () => (await readiness(orders.url))?.startsWith("200 disconnected") && (await readiness(users.url))?.startsWith("200 disconnected"), {
          what: "both services to report NATS down while staying ready",
        });
        const n = load.accepted.length;
        await load.more(20); // registrations keep committing to the outbox meanwhile
        acceptedWhileDown += load.accepted.length - n;
        await nats.start();
        await waitFor(async () => (await readiness(orders.url)) === "200 ok" && (await readiness(users.url)) === "200 ok", {
          what: "both services connected again without a restart",
          timeoutMs: 30_000,
        });
      }
      await load.more(40);
    } finally {
      await load.stop();
    }
    await waitSettled(sys);
    const ledger = await readLedger(sys);
    const check = checkExactlyOnce(ledger, load.accepted);
    expect(load.unexpectedStatuses()).toEqual({});
    report("NATS stop/start x2", {
      sent: load.sent,
      accepted: load.accepted.length,
      applied: ledger.customers.size,
      deadLettered: await streamMessages(sys.nc, sys.namespace, "DLQ"),
      duplicates: check.duplicateWelcomes,
      acceptedWhileDown,
      usersRegisteredEvents: await streamMessages(sys.nc, sys.namespace, "USERS"),
    });
    expect(alive(sys)).toBe(true);
    expect(pids(sys)).toEqual(before);
    expect(check).toEqual({ missingAccepted: [], unknownCustomers: [], withoutWelcome: [], duplicateWelcomes: 0, wrongCounts: 0 });
    expect([...ledger.customers].sort()).toEqual([...ledger.users].sort());
    expect(await streamMessages(sys.nc, sys.namespace, "USERS")).toBe(ledger.users.size);
  }, 120_000);

  it("a three-node JetStream cluster loses the stream leader during load: nothing lost, services keep going", async () => {
    const clusterPorts = [await freePort(), await freePort(), await freePort()];
    const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`).join(",");
    const started = await Promise.allSettled(
      clusterPorts.map((p, i) =>
        startOwnNatsServer({ extraArgs: ["-n", `n${i + 1}`, "--cluster_name", "of-test", "--cluster", `nats://127.0.0.1:${p}`, "--routes", routes] }),
      ),
    );
    // Nodes that did start are disposed even when another did not.
    for (const s of started) if (s.status === "fulfilled") onTestFinished(() => s.value.dispose());
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    const nodes: OwnNatsServer[] = started.map((s) => (s as PromiseFulfilledResult<OwnNatsServer>).value);
    const allUrls = nodes.map((n) => n.url).join(",");
    // A cluster just formed elects its meta leader and places R3 streams before the services are
    // ready: on a loaded 2-core host that has taken over 30 s (two CI runs on 2026-11-27). The
    // meta leader is awaited first, so a timeout says which of the two was slow.
    const probe = await connectTestNats(nodes[0]!.url);
    try {
      await waitFor(() => jetstreamManager(probe, { timeout: 2000 }).then((m) => m.getAccountInfo()), { what: "the cluster's JetStream meta leader", timeoutMs: 60_000 });
      // A leader is not yet three peers: a node that joins late leaves R3 streams "no suitable
      // peers for placement" (CI once saw that outlast the services' 90 s to get ready). So the
      // cluster first places a throwaway R3 stream of its own.
      const placement = `of_placement_${Date.now()}`;
      await waitFor(
        async () => {
          const jsm = await jetstreamManager(probe, { timeout: 5000 });
          await jsm.streams.add({ name: placement, subjects: [`${placement}.>`], num_replicas: 3 });
          await jsm.streams.delete(placement);
          return true;
        },
        { what: "the cluster to place an R3 stream", timeoutMs: 120_000, intervalMs: 1000 },
      );
    } finally {
      await probe.close();
    }
    const sys = await startSystem({ natsUrl: nodes[0]!.url, env: { NATS_URL: allUrls, STREAM_REPLICAS: "3" }, readyTimeoutMs: 90_000 });
    onTestFinished(() => sys.cleanup());
    const { "user-service": users } = sys.services;
    const names = createNames(sys.namespace);
    const jsm = await jetstreamManager(sys.nc);
    const usersInfo = await jsm.streams.info(names.stream("USERS"));
    expect(usersInfo.config.num_replicas).toBe(3);
    expect(usersInfo.cluster?.replicas?.length).toBe(2);

    const before = pids(sys);
    const load = registrationLoad([users.url], { workers: 4 });
    let killed = "";
    let failedWhileElecting = 0;
    try {
      await load.more(60);
      // Kill the node that leads the USERS stream: the hardest node to lose.
      killed = (await jsm.streams.info(names.stream("USERS"))).cluster!.leader!;
      const victim = nodes[Number(killed.slice(1)) - 1]!;
      await victim.stop("SIGKILL");
      const errorsBefore = load.networkErrors + [...load.statuses].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0);
      await load.more(80, 60_000);
      failedWhileElecting = load.networkErrors + [...load.statuses].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0) - errorsBefore;
    } finally {
      await load.stop();
    }
    await waitSettled(sys, sys.nc, 90_000);
    const ledger = await readLedger(sys);
    const check = checkExactlyOnce(ledger, load.accepted);
    expect(load.unexpectedStatuses()).toEqual({});
    // Retried: the JetStream API can time out once while the cluster elects new leaders.
    const newLeader = await waitFor(async () => (await jsm.streams.info(names.stream("USERS"))).cluster?.leader, { what: "USERS stream leader", timeoutMs: 30_000 });
    report("3-node cluster, leader killed", {
      sent: load.sent,
      accepted: load.accepted.length,
      applied: ledger.customers.size,
      deadLettered: await streamMessages(sys.nc, sys.namespace, "DLQ"),
      duplicates: check.duplicateWelcomes,
      killed,
      newLeader: newLeader ?? "none",
      failedRequests: failedWhileElecting,
    });
    expect(alive(sys)).toBe(true);
    expect(pids(sys)).toEqual(before);
    expect(check).toEqual({ missingAccepted: [], unknownCustomers: [], withoutWelcome: [], duplicateWelcomes: 0, wrongCounts: 0 });
    expect([...ledger.customers].sort()).toEqual([...ledger.users].sort());
  }, 540_000); // the sum of its waits (meta leader 60 s, R3 placement 120, start 90, load 30 + 60, new leader 30, settle 90) and the cluster's start

  it("SIGTERM while NATS is down: exits 0 without waiting on the broker, leaving the outbox for the next start, which publishes it", async () => {
    const nats: OwnNatsServer = await startOwnNatsServer();
    onTestFinished(() => nats.dispose());
    const sys = await startSystem({ natsUrl: nats.url, services: ["user-service"] });
    onTestFinished(() => sys.cleanup());
    const users = sys.services["user-service"];
    await nats.stop();
    await waitFor(async () => (await readiness(users.url))?.startsWith("200 disconnected") || undefined, { what: "user-service degraded" });
    const res = await fetch(`${users.url}/users`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "while-down@example.com", name: "Down" }) });
    expect(res.status).toBe(201);
    const t0 = Date.now();
    const exit = await users.proc.kill("SIGTERM");
    expect(exit.code).toBe(0);
    const log = users.proc.output.join("\n");
    expect(log).toContain("NATS not connected; the outbox is published on the next start");
    // No step waited on the broker and failed: the in-flight publish, the final poll, the
    // lifecycle event and the connection's drain are all skipped or closed at once.
    expect(log).not.toContain("shutdown step failed");
    const tookMs = Date.now() - t0;

    await nats.start();
    await users.restart();
    const nc = await connectTestNats(nats.url);
    try {
      await waitFor(async () => (await streamMessages(nc, sys.namespace, "USERS")) === 1 || undefined, { what: "the registration published after the restart" });
    } finally {
      await nc.close();
    }
    report("SIGTERM with NATS down", { sent: 1, accepted: 1, publishedAfterRestart: 1, shutdownMs: tookMs });
  }, 60_000);
});
