import { jetstreamManager } from "@nats-io/jetstream";
import { createNames, eventCatalog } from "@orderflow/shared";
import { loadRegistrations, type LoadResult } from "./load.js";
import { cpuDelta, cpuSnapshot, type CpuSnapshot } from "./cpu.js";
import { readProcStats, type ProcStats } from "./proc.js";
import { percentile, sleep } from "./stats.js";
import type { BenchSystem } from "./system.js";

export interface EndToEnd {
  registrations: number;
  /** User commit → welcome order commit, from users.created_at and orders.created_at. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** From the end of the load until every registration had its welcome order and orderCount 1. */
  catchUpMs: number;
  /** Registrations ÷ (load start → last orderCount applied): what the whole pipeline sustained. */
  completedPerSec: number;
  complete: boolean;
}

export interface LoadPhase {
  http: LoadResult;
  e2e: EndToEnd;
  cpuSeconds: CpuSnapshot;
  services: Record<string, ProcStats | undefined>;
}

const pids = (sys: BenchSystem) => ({
  "user-service": sys.users.proc?.child.pid,
  "order-service": sys.orders.proc?.child.pid,
  "load generator": process.pid,
});

async function dbNowMs(sys: BenchSystem): Promise<number> {
  const [row] = await sys.users.sql<{ ms: number }[]>`select extract(epoch from clock_timestamp()) * 1000 as ms`;
  return Number(row!.ms);
}

/**
 * Waits until every user created since `sinceMs` has orderCount ≥ 1 (so its welcome order
 * committed and orders.created came back) and the order database holds that many welcome
 * orders. Returns whether it got there within `timeoutMs`.
 */
async function waitComplete(sys: BenchSystem, sinceMs: number, timeoutMs: number): Promise<{ total: number; complete: boolean }> {
  const since = new Date(sinceMs);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [u] = await sys.users.sql<{ total: number; done: number }[]>`
      select count(*)::int as total, count(*) filter (where order_count >= 1)::int as done from users where created_at >= ${since}`;
    if (u!.total === u!.done) {
      const [o] = await sys.orders.sql<{ n: number }[]>`
        select count(*)::int as n from orders where source = 'registration' and created_at >= ${since}`;
      if (o!.n >= u!.total) return { total: u!.total, complete: true };
    }
    if (Date.now() > deadline) return { total: u!.total, complete: false };
    await sleep(50);
  }
}

async function endToEndLatencies(sys: BenchSystem, sinceMs: number): Promise<{ sorted: number[]; lastOrderMs: number }> {
  const since = new Date(sinceMs);
  const users = await sys.users.sql<{ id: string; ms: number }[]>`
    select id, extract(epoch from created_at) * 1000 as ms from users where created_at >= ${since}`;
  const orders = await sys.orders.sql<{ user_id: string; ms: number }[]>`
    select user_id, extract(epoch from created_at) * 1000 as ms from orders where source = 'registration' and created_at >= ${since}`;
  const orderAt = new Map(orders.map((o) => [o.user_id, Number(o.ms)]));
  const deltas: number[] = [];
  let lastOrderMs = 0;
  for (const u of users) {
    const at = orderAt.get(u.id);
    if (at === undefined) continue;
    deltas.push(at - Number(u.ms));
    lastOrderMs = Math.max(lastOrderMs, at);
  }
  return { sorted: deltas.sort((a, b) => a - b), lastOrderMs };
}

/** An HTTP load of registrations, then the wait until the pipeline has applied all of them. */
export async function runLoadPhase(sys: BenchSystem, opts: { seconds: number; connections: number; rate?: number; catchUpTimeoutMs?: number }): Promise<LoadPhase> {
  const cpu0 = cpuSnapshot(pids(sys));
  const sinceMs = (await dbNowMs(sys)) - 5; // users.created_at is taken in the service, before its commit
  const t0 = Date.now();
  const http = await loadRegistrations({ url: sys.users.url, seconds: opts.seconds, connections: opts.connections, rate: opts.rate });
  const loadEnd = Date.now();
  const { total, complete } = await waitComplete(sys, sinceMs, opts.catchUpTimeoutMs ?? 120_000);
  const doneAt = Date.now();
  const cpuSeconds = cpuDelta(cpu0, cpuSnapshot(pids(sys)));
  const { sorted } = await endToEndLatencies(sys, sinceMs);
  return {
    http,
    e2e: {
      registrations: total,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.at(-1) ?? NaN,
      catchUpMs: doneAt - loadEnd,
      completedPerSec: total / ((doneAt - t0) / 1000),
      complete,
    },
    cpuSeconds,
    services: { "user-service": readProcStats(sys.users.proc!.child.pid!), "order-service": readProcStats(sys.orders.proc!.child.pid!) },
  };
}

export interface BacklogPhase {
  users: number;
  /** Inserting users + outbox rows straight into user-service's database (not measured as load). */
  insertMs: number;
  /** The running relay publishing the whole backlog to JetStream. */
  relayPublishPerSec: number;
  /** order-service spawn → /readyz 200, with a backlog waiting. */
  readyMs: number;
  /** Welcome orders applied per second, first to last (orders.created_at). */
  drainPerSec: number;
  /** Spawn → last welcome order committed. */
  drainWallMs: number;
  /** Spawn → every backlog user has orderCount 1 (the full loop back to user-service). */
  loopWallMs: number;
  complete: boolean;
  cpuSeconds: CpuSnapshot;
  orderService: ProcStats | undefined;
}

/**
 * Stops order-service, writes `n` registrations (user rows and their users.registered outbox
 * rows, exactly what POST /users commits) into user-service's database, lets the real relay
 * publish them, then starts order-service and measures how fast its consumer drains them.
 */
export async function runBacklogPhase(sys: BenchSystem, { n, timeoutMs = 180_000 }: { n: number; timeoutMs?: number }): Promise<BacklogPhase> {
  await sys.orders.stop();
  const run = `${Date.now().toString(36)}`;
  // The relay's rate comes from the stream's own receive times of the backlog's messages.
  const jsm = await jetstreamManager(sys.nc);
  const usersStream = createNames(sys.namespace).stream("USERS");
  const seqBefore = (await jsm.streams.info(usersStream)).state.last_seq;
  const type = eventCatalog["users.registered"].type;
  const t0 = Date.now();
  const chunk = 10_000;
  for (let from = 0; from < n; from += chunk) {
    const to = Math.min(n, from + chunk) - 1;
    await sys.users.sql.begin(async (tx) => {
      await tx`
        with made as (
          select gen_random_uuid() as id, 'backlog-' || ${run}::text || '-' || i || '@example.com' as email, clock_timestamp() as at
          from generate_series(${from}::int, ${to}::int) as i
        ), ins as (
          insert into users (id, email, name, order_count, created_at)
          select id, email, 'Backlog User', 0, at from made returning id, email, created_at
        )
        insert into outbox (event_id, subject, payload, headers, created_at)
        select ev.id, 'users.registered',
          json_build_object(
            'specversion', '1.0', 'id', ev.id, 'source', '/orderflow/user-service', 'type', ${type}::text,
            'subject', ins.id, 'time', ev.t, 'datacontenttype', 'application/json',
            'data', json_build_object('userId', ins.id, 'email', ins.email, 'name', 'Backlog User', 'registeredAt', ev.t)
          )::text,
          '{}'::jsonb, ins.created_at
        from ins, lateral (select gen_random_uuid() as id,
          to_char(ins.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as t) ev`;
    });
  }
  const insertMs = Date.now() - t0;
  const relayStart = Date.now();
  for (;;) {
    const [r] = await sys.users.sql<{ n: number }[]>`select count(*)::int as n from outbox`;
    if (r!.n === 0) break;
    if (Date.now() - relayStart > timeoutMs) throw new Error(`relay left ${r!.n} rows unpublished`);
    await sleep(50);
  }
  // The relay wakes on its poll (no HTTP commit signalled it); count from its first publish.
  const seqAfter = (await jsm.streams.info(usersStream)).state.last_seq;
  const [first, last] = await Promise.all([seqBefore + 1, seqAfter].map((seq) => jsm.streams.getMessage(usersStream, { seq })));
  const relayPublishPerSec = (seqAfter - seqBefore) / Math.max(0.001, (last!.time.getTime() - first!.time.getTime()) / 1000);

  const cpu0 = cpuSnapshot({ "user-service": sys.users.proc?.child.pid, "load generator": process.pid });
  const spawnAt = Date.now();
  const readyMs = await sys.orders.start();
  const pidsNow = { "user-service": sys.users.proc?.child.pid, "order-service": sys.orders.proc?.child.pid, "load generator": process.pid };
  const since = new Date(t0 - 1000);
  let drainWallMs = NaN;
  let loopWallMs = NaN;
  let complete = false;
  for (;;) {
    if (Number.isNaN(drainWallMs)) {
      const [o] = await sys.orders.sql<{ n: number }[]>`select count(*)::int as n from customers where email like ${`backlog-${run}-%`}`;
      const [w] = await sys.orders.sql<{ n: number }[]>`select count(*)::int as n from orders where source = 'registration' and created_at >= ${since}`;
      if (o!.n >= n && w!.n >= n) drainWallMs = Date.now() - spawnAt;
    } else {
      const [u] = await sys.users.sql<{ n: number }[]>`select count(*)::int as n from users where email like ${`backlog-${run}-%`} and order_count = 1`;
      if (u!.n >= n) {
        loopWallMs = Date.now() - spawnAt;
        complete = true;
        break;
      }
    }
    if (Date.now() - spawnAt > timeoutMs) break;
    await sleep(100);
  }
  const cpuSeconds = cpuDelta({ ...cpu0, "order-service": 0 }, cpuSnapshot(pidsNow));
  const [d] = await sys.orders.sql<{ first: number; last: number; n: number }[]>`
    select extract(epoch from min(o.created_at)) * 1000 as first, extract(epoch from max(o.created_at)) * 1000 as last, count(*)::int as n
    from orders o join customers c on c.user_id = o.user_id where o.source = 'registration' and c.email like ${`backlog-${run}-%`}`;
  const drainPerSec = d!.n / Math.max(0.001, (Number(d!.last) - Number(d!.first)) / 1000);
  return {
    users: n,
    insertMs,
    relayPublishPerSec,
    readyMs,
    drainPerSec,
    drainWallMs,
    loopWallMs,
    complete,
    cpuSeconds,
    orderService: readProcStats(sys.orders.proc!.child.pid!),
  };
}
