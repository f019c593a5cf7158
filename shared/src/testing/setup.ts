import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { connectTestNats, deleteNamespaceWithin, testNatsUrl, uniqueNamespace } from "./nats.js";
import { teardown } from "./teardown.js";
import { freePort, startProcess, waitReady, type ManagedProcess } from "./process.js";
import { SERVICE_NODE_OPTIONS } from "../lifecycle/node-options.js";

export { SERVICE_NODE_OPTIONS };

/** The repository root, found from this file (shared/src/testing or shared/dist/testing). */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

/** The environment a service process needs to run on loopback in a test's (or bench's) own database and namespace. */
export function serviceEnv(o: { port: number; databaseUrl: string; natsUrl: string; namespace: string }): Record<string, string> {
  return { NODE_OPTIONS: SERVICE_NODE_OPTIONS, PORT: String(o.port), HOST: "127.0.0.1", DATABASE_URL: o.databaseUrl, NATS_URL: o.natsUrl, NATS_NAMESPACE: o.namespace, LOG_LEVEL: "info" };
}

/** This repository's services. startSystem takes any folder under services/ with a dist/main.js. */
export type ServiceName = "user-service" | "order-service" | "event-log";

export interface SystemOptions<N extends string = ServiceName> {
  services?: N[];
  /** Extra environment for every service (e.g. a NATS_URL of a test's own server). */
  env?: Record<string, string>;
  natsUrl?: string;
  echo?: boolean;
  /** How long each service may take to become ready (default 30 s). */
  readyTimeoutMs?: number;
}

export interface TestService<N extends string = string> {
  readonly name: N;
  readonly url: string;
  readonly port: number;
  /** Where the service serves GET /metrics (METRICS_PORT). */
  readonly metricsPort: number;
  readonly database: TestDatabase;
  proc: ManagedProcess;
  /** Starts the process again (same port, database and namespace) after a stop or kill. */
  restart(extraEnv?: Record<string, string>): Promise<void>;
  /** Starts without waiting for readiness, for tests of a service whose dependencies are down. */
  spawn(extraEnv?: Record<string, string>): ManagedProcess;
}

export interface TestSystem<N extends string = ServiceName> {
  readonly namespace: string;
  readonly nc: NatsConnection;
  readonly services: Record<N, TestService<N>>;
  cleanup(): Promise<void>;
}

/**
 * Disposable system for integration tests: a database per service, a fresh NATS namespace and
 * each service as a real process from its build (`npm run build` first). `cleanup()` stops the
 * processes, drops the databases and deletes the namespace's streams.
 */
export async function startSystem<N extends string = ServiceName>(opts: SystemOptions<N> = {}): Promise<TestSystem<N>> {
  const namespace = uniqueNamespace();
  const natsUrl = opts.natsUrl ?? testNatsUrl();
  const wanted = opts.services ?? (["user-service", "order-service"] as N[]);
  const nc = await connectTestNats(natsUrl);
  const services = {} as Record<N, TestService<N>>;
  const started = () => Object.values(services) as TestService<N>[];
  // Every step runs, then a failure is reported: a database or namespace left behind is a leak.
  // Once: a test's own call and its suite's afterAll may both ask.
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= teardown(
      () => Promise.all(started().map((s) => s.proc?.kill("SIGKILL"))),
      ...started().map((s) => () => s.database.drop()),
      () => deleteNamespaceWithin(nc, natsUrl, namespace),
      () => nc.close(),
    ));

  try {
    await startServices();
  } catch (err) {
    // The caller gets no system to clean up: what was made so far goes now.
    await cleanup().catch(() => {});
    throw err;
  }
  return { namespace, nc, services, cleanup };

  async function startServices() {
    for (const name of wanted) {
      const database = await createTestDatabase(`of_${name.replace("-service", "")}`);
      const port = await freePort();
      const metricsPort = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const env = (extra: Record<string, string> = {}) => ({
        ...serviceEnv({ port, databaseUrl: database.url, natsUrl, namespace }),
        METRICS_PORT: String(metricsPort),
        RETRY_DELAYS_MS: "200,500,1000",
        SHUTDOWN_TIMEOUT_MS: "10000",
        ...opts.env,
        ...extra,
      });
      const script = join(repoRoot, "services", name, "dist", "main.js");
      const svc: TestService<N> = {
        name,
        url,
        port,
        metricsPort,
        database,
        proc: undefined as unknown as ManagedProcess,
        spawn(extra) {
          svc.proc = startProcess(script, [], env(extra), { cwd: join(repoRoot, "services", name), echo: opts.echo });
          return svc.proc;
        },
        async restart(extra) {
          svc.spawn(extra);
          await waitReady(url, svc.proc, opts.readyTimeoutMs);
        },
      };
      services[name] = svc;
    }
    await Promise.all(started().map((s) => s.restart()));
  }
}
