import { Agent, request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { sql } from "drizzle-orm";
import { createEvent, createNames, openDatabase, pendingMigrations, uuidv7 } from "@orderflow/shared";
import { connectTestNats, createTestDatabase, deleteNamespace, freePort, repoRoot, startProcess, teardown, testNatsUrl, uniqueNamespace, waitFor, waitReady, type TestDatabase } from "@orderflow/shared/testing";

const migrations = join(repoRoot, "services", "user-service", "drizzle");
const main = join(repoRoot, "services", "user-service", "dist", "main.js");
const migrate = join(repoRoot, "services", "user-service", "dist", "migrate.js");
const namespace = uniqueNamespace();
const databases: TestDatabase[] = [];
afterAll(() =>
  teardown(...databases.map((d) => () => d.drop()), async () => {
    // Its own step: NATS unreachable must not keep the databases from being dropped.
    const nc = await connectTestNats();
    try {
      await deleteNamespace(nc, namespace);
    } finally {
      await nc.close();
    }
  }),
);

/** A fresh database for user-service, dropped after the file. */
async function freshDatabase() {
  const database = await createTestDatabase("of_lifecycle");
  databases.push(database);
  return database;
}

/** user-service from its build on `database` and a free port, in this file's namespace unless `env` says otherwise. */
async function startUserService(database: TestDatabase, env: Record<string, string> = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = startProcess(main, [], { PORT: String(port), HOST: "127.0.0.1", DATABASE_URL: database.url, NATS_URL: testNatsUrl(), NATS_NAMESPACE: namespace, ...env });
  return { url, proc };
}

async function readyz(url: string) {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { checks: Record<string, string> } };
}

describe("migrations left to a Job (MIGRATE_ON_START=false)", () => {
  it("counts pending migrations", async () => {
    const db = await openDatabase("pglite://memory");
    try {
      expect(await pendingMigrations(db.db, migrations)).toBeGreaterThanOrEqual(2);
      await db.migrate(migrations);
      expect(await pendingMigrations(db.db, migrations)).toBe(0);
    } finally {
      await db.close();
    }
  });

  it("stays not ready until the migrate entry point has run, then becomes ready", async () => {
    const database = await freshDatabase();
    const { url, proc } = await startUserService(database, { MIGRATE_ON_START: "false" });
    try {
      const notReady = await waitFor(async () => {
        const r = await readyz(url).catch(() => undefined);
        return r?.status === 503 && r.body.checks.database?.includes("not applied") ? r : undefined;
      }, { what: "readiness to report pending migrations" });
      expect(notReady.body.checks.database).toMatch(/migration\(s\) not applied/);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      // A route answers 503, not a 500 from a missing table: the server is not ready, not broken.
      const early = await fetch(`${url}/users`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "early@example.com", name: "Early" }) });
      expect([early.status, early.headers.get("content-type"), early.headers.get("retry-after")]).toEqual([503, "application/problem+json", "5"]);
      expect(((await early.json()) as { detail: string }).detail).toMatch(/not migrated yet/);
      // Routes that need no table answer as usual meanwhile.
      expect((await fetch(`${url}/openapi.json`)).status).toBe(200);
      // Connected and streams set up, but no consumer before the schema is in: it would fail
      // every event on a missing table and dead-letter them.
      await waitFor(() => proc.output.some((l) => l.includes("waiting for migrations")), { what: "the service to say it waits for migrations" });
      const nc = await connectTestNats();
      try {
        const jsm = await jetstreamManager(nc);
        const names = createNames(namespace);
        await expect(jsm.consumers.info(names.stream("ORDERS"), names.durable("user-service"))).rejects.toThrow(/consumer not found/);

        const job = startProcess(migrate, [], { DATABASE_URL: database.url });
        expect((await job.exitWithin(30_000)).code).toBe(0);
        await waitReady(url, proc);
        const later = await fetch(`${url}/users`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "early@example.com", name: "Early" }) });
        expect(later.status).toBe(201);
        expect((await jsm.consumers.info(names.stream("ORDERS"), names.durable("user-service"))).name).toBe(names.durable("user-service"));
      } finally {
        await nc.close();
      }
    } finally {
      await proc.kill("SIGKILL");
    }
  });

  it("exits 1 naming the table when every migration has run but a shared table is missing (a schema that forgot to export it)", async () => {
    const database = await freshDatabase();
    expect((await startProcess(migrate, [], { DATABASE_URL: database.url }).exitWithin(30_000)).code).toBe(0);
    const db = await openDatabase(database.url);
    await db.db.execute(sql`drop table inbox`);
    await db.close();
    const { proc } = await startUserService(database);
    try {
      // Awaited with a deadline, so a service that never exits fails the test and is killed below.
      await waitFor(() => proc.child.exitCode !== null || proc.child.signalCode !== null, { what: "the service to exit", timeoutMs: 30_000 });
      expect((await proc.exited).code).toBe(1);
      expect(proc.output.join("\n")).toMatch(/table inbox missing after all migrations: export inbox from @orderflow\/shared\/tables/);
    } finally {
      await proc.kill("SIGKILL");
    }
  });

  it("the migrate entry point exits 2 naming a missing DATABASE_URL, and 1 when the database cannot be reached", async () => {
    const missing = startProcess(migrate, [], { DATABASE_URL: "" });
    expect((await missing.exitWithin(30_000)).code).toBe(2);
    expect(missing.output.join("\n")).toMatch(/DATABASE_URL/);
    const unreachable = startProcess(migrate, [], { DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/nope` });
    expect((await unreachable.exitWithin(30_000)).code).toBe(1);
  });
});

describe("graceful shutdown with keep-alive clients", () => {
  it("exits 0 promptly on SIGTERM while a keep-alive client keeps probing /readyz", async () => {
    const { url, proc } = await startUserService(await freshDatabase(), { SHUTDOWN_TIMEOUT_MS: "5000" });
    try {
      await waitReady(url, proc);
      // One socket, reused for every probe, the way an ingress or a mesh sidecar would.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const probe = () =>
        new Promise<number>((resolve) => {
          const req = request(`${url}/readyz`, { agent }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          });
          req.on("error", () => resolve(0));
          req.end();
        });
      expect(await probe()).toBe(200);
      let probing = true;
      const statuses: number[] = [];
      const loop = (async () => {
        while (probing) statuses.push(await probe());
      })();
      const t0 = Date.now();
      proc.child.kill("SIGTERM");
      const exit = await proc.exitWithin(30_000);
      const took = Date.now() - t0;
      probing = false;
      await loop;
      agent.destroy();
      console.log(`keep-alive shutdown: exit=${exit.code} in ${took} ms, probes during drain=${statuses.length}`);
      // A connection that held the server open would run into the 5 s deadline, which exits 1.
      expect(exit.code).toBe(0);
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});

describe("draining", () => {
  it("finishes requests in flight at SIGTERM, turns new ones away with a 503 it counts in its metrics, then exits 0", async () => {
    const metricsPort = await freePort();
    const { url, proc } = await startUserService(await freshDatabase(), { METRICS_PORT: String(metricsPort), SHUTDOWN_TIMEOUT_MS: "10000" });
    try {
      await waitReady(url, proc);
      /** A POST /users whose headers are in and whose body is not: in flight, so the drain waits for it. */
      const inFlight = async () => {
        const body = JSON.stringify({ email: `drain-${uuidv7()}@example.com`, name: "Drain" });
        const socket = connect(Number(new URL(url).port), "127.0.0.1");
        let text = "";
        socket.on("data", (d) => (text += d.toString()));
        const closed = new Promise<string>((resolve) => socket.on("close", () => resolve(text)));
        // Expect: 100-continue, so the server says when it has taken the request in (a request
        // still unread in the socket at SIGTERM is the keep-alive race, not a request in flight).
        socket.write(`POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n${body.slice(0, 5)}`);
        await waitFor(() => text.startsWith("HTTP/1.1 100 Continue") || undefined, { what: "the server to take the request in" });
        return { finish: async (more = "") => (socket.write(body.slice(5) + more), (await closed).replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, "")) };
      };
      const [a, b] = [await inFlight(), await inFlight()];
      proc.child.kill("SIGTERM");
      await waitFor(() => proc.output.some((l) => l.includes('"shutting down"')) || undefined, { what: "the drain to start" });
      // A's body, and a request pipelined behind it on the same connection: that one arrives during the drain.
      const aAnswers = await a.finish("GET /users HTTP/1.1\r\nHost: x\r\n\r\n");
      expect(aAnswers).toMatch(/^HTTP\/1\.1 201 [\s\S]*HTTP\/1\.1 503 /);
      expect(aAnswers).toMatch(/the service is shutting down/);
      // B still holds the drain open: the metrics server answers, and counts the 503.
      const scrape = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(scrape).toMatch(/^orderflow_http_requests_total\{method="GET",route="draining",status="503",service="user-service"\} 1$/m);
      expect(await b.finish()).toMatch(/^HTTP\/1\.1 201 /);
      expect((await proc.exitWithin(15_000)).code).toBe(0);
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});

describe("graceful shutdown", () => {
  it("publishes every row left in the outbox, not one batch of them", async () => {
    const database = await freshDatabase();
    const ns = uniqueNamespace();
    const nc = await connectTestNats();
    onTestFinished(() => teardown(() => deleteNamespace(nc, ns), () => nc.close()));
    const db = await openDatabase(database.url, { poolSize: 1 });
    onTestFinished(() => db.close());
    const { url, proc } = await startUserService(database, { NATS_NAMESPACE: ns, SHUTDOWN_TIMEOUT_MS: "10000" });
    try {
      await waitReady(url, proc);
      // Rows nobody handed to the relay, younger than the poll's grace: only the shutdown's
      // final publish takes them (three batches' worth and more).
      const events = Array.from({ length: 700 }, () => {
        const id = uuidv7();
        return createEvent({ name: "users.registered", source: "/orderflow/user-service", subject: id, data: { userId: id, email: `${id}@example.com`, name: "Left", registeredAt: new Date().toISOString() } });
      });
      await db.db.execute(sql`insert into outbox (event_id, subject, payload, headers)
        select (r->>'id')::uuid, 'users.registered', r::text, '{}'::jsonb from json_array_elements(${JSON.stringify(events)}::json) r`);
      proc.child.kill("SIGTERM");
      expect((await proc.exitWithin(30_000)).code).toBe(0);
      const left = (await db.db.execute(sql`select count(*)::int as n from outbox`)) as unknown as { n: number }[];
      expect(left[0]!.n).toBe(0);
      const stream = await (await jetstreamManager(nc)).streams.info(createNames(ns).stream("USERS"));
      expect(stream.state.messages).toBe(700);
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});
