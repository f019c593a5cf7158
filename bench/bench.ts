import { cpus, totalmem } from "node:os";
import { execFileSync } from "node:child_process";
import { measureHttp, type HttpLimit } from "./limits/http.js";
import { measureRoundTrip, type RoundTripLimit } from "./limits/round-trip.js";
import { measureJetStream, type JetStreamLimit } from "./limits/jetstream.js";
import { measurePostgres, type PostgresLimit } from "./limits/postgres.js";
import { runBacklogPhase, runLoadPhase, type BacklogPhase, type LoadPhase } from "./phases.js";
import { readProcStats, type ProcStats } from "./proc.js";
import { createBenchSystem } from "./system.js";

export interface BenchOptions {
  /** Seconds per raw-limit measurement. */
  limitSeconds: number;
  /** Seconds of the saturation load (the issue asks for ≥ 20). */
  saturationSeconds: number;
  connections: number;
  moderateRate: number;
  moderateSeconds: number;
  backlogUsers: number;
  /** When set, each service writes a V8 CPU profile here (node --cpu-prof). */
  cpuProfileDir?: string;
  log?: (line: string) => void;
}

export const fullOptions: BenchOptions = {
  limitSeconds: 5,
  saturationSeconds: 20,
  connections: 64,
  moderateRate: 1000,
  moderateSeconds: 10,
  backlogUsers: 50_000,
};

/** A shorter run for comparing one change against another (not for the published table). */
export const quickOptions: BenchOptions = {
  limitSeconds: 3,
  saturationSeconds: 10,
  connections: 64,
  moderateRate: 1000,
  moderateSeconds: 5,
  backlogUsers: 20_000,
};

export const smokeOptions: BenchOptions = {
  limitSeconds: 1,
  saturationSeconds: 2,
  connections: 8,
  moderateRate: 50,
  moderateSeconds: 1,
  backlogUsers: 300,
};

export interface BenchResult {
  startedAt: string;
  options: Omit<BenchOptions, "log">;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; postgres: string; nats: string; commit: string };
  /** postgresAfter: the same measurement once the system phases are done (services idle), to show the host's drift within the run. */
  limits: { postgres: PostgresLimit; jetstream: JetStreamLimit; http: HttpLimit; roundTrip: RoundTripLimit; postgresAfter: PostgresLimit };
  system: {
    readyMs: { "user-service": number; "order-service": number };
    saturation: LoadPhase;
    moderate: LoadPhase;
    backlog: BacklogPhase;
    /** VmHWM and CPU seconds of each process over its life (order-service: the restarted one). */
    services: Record<string, ProcStats | undefined>;
  };
  ratios: { systemOverPostgres: number; drainOverConsumeAck: number };
  targets: { name: string; target: string; actual: string; met: boolean }[];
}

function versionOf(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).trim().split("\n")[0]!;
  } catch {
    return "unknown";
  }
}

export async function runBench(opts: BenchOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => {});
  const startedAt = new Date().toISOString();
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres: versionOf("psql", ["-h", "127.0.0.1", "-U", "postgres", "-Atc", "show server_version"]),
    nats: versionOf("nats-server", ["--version"]),
    commit: versionOf("git", ["rev-parse", "--short", "HEAD"]),
  };

  log(`limits: postgres (${opts.limitSeconds}s)…`);
  const pg = await measurePostgres({ seconds: opts.limitSeconds });
  log(`  ${pg.commitsPerSec.toFixed(0)} commits/s; jetstream…`);
  const js = await measureJetStream({ seconds: opts.limitSeconds });
  log(`  ${js.publishPerSec.toFixed(0)} pub/s, ${js.consumeAckPerSec.toFixed(0)} consume+ack/s; http…`);
  const http = await measureHttp({ seconds: opts.limitSeconds, connections: opts.connections });
  log(`  ${http.requestsPerSec.toFixed(0)} req/s; round trip…`);
  const roundTrip = await measureRoundTrip({ seconds: Math.min(2, opts.limitSeconds) });
  log(`  ${roundTrip.latencyUs.toFixed(0)} µs, ${roundTrip.cpuUs.toFixed(0)} µs CPU`);

  const sys = await createBenchSystem({ cpuProfileDir: opts.cpuProfileDir });
  try {
    const readyUsers = await sys.users.start();
    const readyOrders = await sys.orders.start();
    log(`system: ready in ${readyUsers.toFixed(0)} / ${readyOrders.toFixed(0)} ms; saturation ${opts.saturationSeconds}s at ${opts.connections} connections…`);
    const saturation = await runLoadPhase(sys, { seconds: opts.saturationSeconds, connections: opts.connections });
    log(`  ${saturation.http.createdPerSec.toFixed(0)} 201/s, e2e p99 ${saturation.e2e.p99Ms.toFixed(1)} ms, caught up ${saturation.e2e.catchUpMs} ms after; moderate ${opts.moderateRate}/s…`);
    const moderate = await runLoadPhase(sys, { seconds: opts.moderateSeconds, connections: opts.connections, rate: opts.moderateRate });
    log(`  ${moderate.http.createdPerSec.toFixed(0)} 201/s, e2e p99 ${moderate.e2e.p99Ms.toFixed(1)} ms; backlog of ${opts.backlogUsers}…`);
    const orderServiceUnderLoad = readProcStats(sys.orders.proc!.child.pid!);
    const backlog = await runBacklogPhase(sys, { n: opts.backlogUsers });
    log(`  drained ${backlog.drainPerSec.toFixed(0)}/s; postgres again…`);
    const postgresAfter = await measurePostgres({ seconds: opts.limitSeconds });
    log(`  ${postgresAfter.commitsPerSec.toFixed(0)} commits/s`);
    const services = {
      "user-service": readProcStats(sys.users.proc!.child.pid!),
      "order-service (load)": orderServiceUnderLoad,
      "order-service (drain)": backlog.orderService,
    };
    const ratios = {
      systemOverPostgres: saturation.e2e.completedPerSec / pg.commitsPerSec,
      drainOverConsumeAck: backlog.drainPerSec / js.consumeAckPerSec,
    };
    const peakRss = Math.max(...Object.values(services).map((s) => s?.peakRssMb ?? Infinity));
    const ready = Math.max(readyUsers, readyOrders, backlog.readyMs);
    const f = (n: number, d = 0) => n.toFixed(d);
    const targets = [
      { name: "registrations/s ÷ Postgres commits/s", target: "≥ 0.35", actual: f(ratios.systemOverPostgres, 2), met: ratios.systemOverPostgres >= 0.35 && saturation.e2e.complete },
      { name: "HTTP p99 at saturation", target: "≤ 50 ms", actual: `${f(saturation.http.latencyP99Ms)} ms`, met: saturation.http.latencyP99Ms <= 50 },
      { name: "end-to-end p99 at saturation", target: "≤ 100 ms", actual: `${f(saturation.e2e.p99Ms, 1)} ms`, met: saturation.e2e.p99Ms <= 100 },
      { name: `end-to-end p99 at ${opts.moderateRate}/s`, target: "≤ 20 ms", actual: `${f(moderate.e2e.p99Ms, 1)} ms`, met: moderate.e2e.p99Ms <= 20 },
      { name: "backlog drain/s ÷ consume+ack/s", target: "≥ 0.30", actual: f(ratios.drainOverConsumeAck, 2), met: ratios.drainOverConsumeAck >= 0.3 && backlog.complete },
      { name: "peak RSS per service", target: "≤ 150 MB", actual: `${f(peakRss)} MB`, met: peakRss <= 150 },
      { name: "service ready after start", target: "≤ 1500 ms", actual: `${f(ready)} ms`, met: ready <= 1500 },
    ];
    return {
      startedAt,
      options: { ...opts, log: undefined } as Omit<BenchOptions, "log">,
      machine,
      limits: { postgres: pg, jetstream: js, http, roundTrip, postgresAfter },
      system: { readyMs: { "user-service": readyUsers, "order-service": readyOrders }, saturation, moderate, backlog, services },
      ratios,
      targets,
    };
  } finally {
    await sys.cleanup();
  }
}
