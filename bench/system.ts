import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import {
  connectTestNats,
  createTestDatabase,
  deleteNamespace,
  freePort,
  repoRoot,
  startProcess,
  testNatsUrl,
  uniqueNamespace,
  waitReady,
  type ManagedProcess,
  type TestDatabase,
  serviceEnv,
  SERVICE_NODE_OPTIONS,
} from "@orderflow/shared/testing";
import type { NatsConnection } from "@nats-io/transport-node";

const profilerPreload = fileURLToPath(new URL("./cpu-profile.cjs", import.meta.url));

export type ServiceName = "user-service" | "order-service";

export interface BenchService {
  readonly name: ServiceName;
  readonly url: string;
  readonly database: TestDatabase;
  /** A postgres.js client on the service's database, for the bench's own queries. */
  readonly sql: postgres.Sql;
  proc: ManagedProcess | undefined;
  /** Spawns the process and resolves with the milliseconds until /readyz answered 200. */
  start(): Promise<number>;
  /** SIGTERM and wait for the exit (a graceful stop, as a rollout would do). */
  stop(): Promise<void>;
}

export interface BenchSystem {
  readonly namespace: string;
  readonly nc: NatsConnection;
  readonly users: BenchService;
  readonly orders: BenchService;
  cleanup(): Promise<void>;
}

/**
 * Both services as separate processes from their build, each on a fresh database, in a fresh
 * NATS namespace. `cleanup()` kills what is still running, drops the databases and streams.
 */
export async function createBenchSystem({ env = {} as Record<string, string>, echo = false, cpuProfileDir }: { env?: Record<string, string>; echo?: boolean; cpuProfileDir?: string } = {}): Promise<BenchSystem> {
  const namespace = uniqueNamespace();
  const natsUrl = testNatsUrl();
  const nc = await connectTestNats(natsUrl);
  const made: BenchService[] = [];

  async function service(name: ServiceName): Promise<BenchService> {
    const database = await createTestDatabase(`of_bench_${name.replace("-service", "")}`);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const script = join(repoRoot, "services", name, "dist", "main.js");
    const svc: BenchService = {
      name,
      url,
      database,
      sql: postgres(database.url, { max: 2, onnotice: () => {} }),
      proc: undefined,
      async start() {
        const t0 = performance.now();
        svc.proc = startProcess(
          script,
          [],
          {
            ...serviceEnv({ port, databaseUrl: database.url, natsUrl, namespace }),
            // A .cpuprofile per process, written when it exits gracefully (open it in Chrome DevTools).
            ...(cpuProfileDir ? { NODE_OPTIONS: `${SERVICE_NODE_OPTIONS} --require ${profilerPreload}`, BENCH_CPU_PROFILE_DIR: join(cpuProfileDir, name) } : {}),
            ...env,
          },
          { cwd: join(repoRoot, "services", name), echo },
        );
        await waitReady(url, svc.proc, 30_000);
        return performance.now() - t0;
      },
      async stop() {
        await svc.proc?.kill("SIGTERM");
      },
    };
    made.push(svc);
    return svc;
  }

  const users = await service("user-service");
  const orders = await service("order-service");
  return {
    namespace,
    nc,
    users,
    orders,
    async cleanup() {
      // SIGTERM first so a profiled process writes its profile; SIGKILL whatever is left.
      if (cpuProfileDir) await Promise.all(made.map((s) => s.stop()));
      await Promise.all(made.map((s) => s.proc?.kill("SIGKILL")));
      await Promise.all(made.map((s) => s.sql.end({ timeout: 2 }).catch(() => {})));
      await Promise.all(made.map((s) => s.database.drop().catch(() => {})));
      await deleteNamespace(nc, namespace).catch(() => {});
      await nc.close();
    },
  };
}
