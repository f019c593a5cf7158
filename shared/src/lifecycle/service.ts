import { sql } from "drizzle-orm";
import { hostname } from "node:os";
import { jetstream, jetstreamManager, type ConsumerInfo, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { baseConfigSchema, loadConfigOrExit, redactUrl, type BaseConfig } from "../config/config.js";
import { createLogger } from "../logger/index.js";
import { createConsumer, type Consumer, type EventHandlers, type Outcome } from "../consumer/runner.js";
import { oldestUnackedAgeSeconds } from "../consumer/oldest-unacked.js";
import { executeRows, ForeignMigrationsError, openDatabase, pendingMigrations, pingWithin, type Database, type Db } from "../db/database.js";
import { isTransientDbError, reportableError } from "../db/errors.js";
import { eventCatalog, type EventName, type StreamName } from "../events/catalog.js";
import { StartupError } from "../errors/index.js";
import { createReadiness, Degraded, registerHealthRoutes } from "../health/readiness.js";
import type { ServiceApp } from "../http/app.js";
import { problem, problemResponse } from "../http/problem.js";
import { startHttpServer, type HttpServer } from "../http/server.js";
import { createMetrics, startMetricsServer, type Metrics, type MetricsServer } from "../metrics/index.js";
import { createAckedPublisher } from "../nats/acked-publisher.js";
import { connectNats, type NatsState } from "../nats/connect.js";
import { abortableDelay } from "./delay.js";
import { createNames, type Names } from "../nats/names.js";
import { ensureStreams, streamRestorer } from "../nats/streams.js";
import { createOutboxRelay, type OutboxRelay } from "../outbox/relay.js";
import type { OutboxMessage } from "../outbox/handoff.js";
import { retryUntilDone } from "./retry.js";
import { installShutdown } from "./shutdown.js";
import { createSystemEvents } from "./system-events.js";

export interface ConsumerSpec {
  stream: StreamName;
  durable: string;
  filterSubject: string;
  handlers: EventHandlers;
}

/**
 * A consumer of the one event type its handlers take: the stream and filter subject come from
 * the event catalog. (One filter subject per consumer, as nats-server 2.9 allows: a service that
 * takes two event types has two consumers.)
 * @example consumerFor("user-service", { "orders.created": onOrderCreated })
 */
export function consumerFor(durable: string, handlers: EventHandlers): ConsumerSpec {
  const names = Object.keys(handlers);
  if (names.length !== 1) throw new Error(`consumer ${durable}: consumerFor takes handlers of exactly one event type, got ${names.length} (${names.join(", ")}); give one consumer, with a durable name of its own, per event type`);
  const name = names[0]!;
  if (!Object.hasOwn(eventCatalog, name)) throw new Error(`consumer ${durable}: ${name} is not in the event catalog (shared/src/events/catalog.ts)`);
  if (typeof handlers[name as EventName] !== "function") throw new Error(`consumer ${durable}: the handler for ${name} is not a function`);
  const { stream, subject } = eventCatalog[name as EventName];
  return { stream, durable, filterSubject: subject, handlers };
}

/** The streams a service needs when its spec names none: those of the events it produces and consumes. */
export function streamsOf(spec: Pick<ServiceSpec, "name" | "consumers">): StreamName[] {
  const produced = Object.values(eventCatalog).filter((e) => e.producer === spec.name).map((e) => e.stream);
  return [...new Set<StreamName>([...produced, ...spec.consumers.map((c) => c.stream)])];
}

export interface ServiceSpec {
  name: string;
  version: string;
  config: BaseConfig;
  log: Logger;
  migrationsFolder: string;
  /**
   * Streams this service publishes to or consumes from; DLQ and SYSTEM are always added. By
   * default those of the events the catalog says it produces and of its consumers (streamsOf).
   */
  streams?: StreamName[];
  /** Builds the HTTP app. `published` hands the relay the outbox messages of a commit. */
  buildApp(deps: { db: Db; published: (messages: OutboxMessage[]) => void; names: Names }): ServiceApp;
  consumers: ConsumerSpec[];
  /**
   * Long-running loops of the service's own (e.g. the event log's batch ingesters), built once
   * NATS and the streams are up. They are started before the service reports ready and stopped
   * with the consumers, after HTTP has drained.
   */
  workers?: (ctx: WorkerContext) => Worker[];
  /** Runs as soon as shutdown begins, before HTTP drains (e.g. to end open SSE streams). */
  onShuttingDown?: () => void;
  /**
   * Whether the service publishes through an outbox table of its own (default true). One that
   * only reads streams (the event log) has no such table, and a relay would poll it and fail
   * forever.
   */
  outbox?: boolean;
  /** Housekeeping run every `everyMs` once the database is migrated (e.g. expiring idempotency keys). */
  periodic?: { name: string; everyMs: number; run: (db: Db, log: Logger) => Promise<void> }[];
}

export interface Worker {
  name: string;
  /** The durable consumer it reads, if any: its lag is reported with the service's consumers'. */
  durable?: { stream: StreamName; durable: string };
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface WorkerContext {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  db: Db;
  names: Names;
  log: Logger;
  /** Creates the service's streams again, for a worker that finds its stream gone. */
  restoreStreams: () => Promise<void>;
  /** Counts messages a worker's consumer finished with, as the runner's are (metrics on). */
  countEvents?: (consumer: string, outcome: Outcome, n: number) => void;
  /** Records a worker's consumer's event latency, as the runner's is (metrics on). */
  eventLatency?: (consumer: string) => (seconds: number) => void;
}

export interface RunningService {
  readonly port: number;
  /** Where GET /metrics answers, when METRICS_PORT turned it on. */
  readonly metricsPort?: number;
  readonly database: Database;
  /** Resolves once migrations, NATS, streams, the relay and consumers are all up. */
  readonly started: Promise<void>;
  shutdown(reason: string): Promise<void>;
}

/**
 * The shared boot sequence every service's `main.ts` runs: database → HTTP (so liveness answers
 * at once) → migrations, NATS, streams, outbox relay and consumers in the background, each
 * retried until its dependency is up (any other failure exits 1) → ordered shutdown on
 * SIGTERM/SIGINT.
 */
export async function runService(spec: ServiceSpec): Promise<RunningService> {
  const { config, log } = spec;
  // Two consumers with one durable name would share one NATS consumer (the second's filter
  // replacing the first's) and one inbox key: one of them would never see its events.
  const durables = spec.consumers.map((c) => c.durable);
  const twice = durables.find((d, i) => durables.indexOf(d) !== i);
  if (twice) throw new StartupError(`two consumers are named ${twice}: give each consumer a durable name of its own`);
  const instance = config.SERVICE_INSTANCE ?? hostname();
  const names = createNames(config.NATS_NAMESPACE);
  const abort = new AbortController();
  const database = await openDatabase(config.DATABASE_URL, {
    poolSize: config.DATABASE_POOL_SIZE,
    applicationName: spec.name,
    statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
    onCreatingPglite: (dir) => log.info({ dir }, "creating the embedded PGlite database (the first start takes several seconds)"),
  });

  let migrated = false;
  let connection: { nc: NatsConnection; state: NatsState } | undefined;
  /** JetStream, once it answered on `connection`. */
  let nats: { js: JetStreamClient; jsm: JetStreamManager } | undefined;
  let relay: OutboxRelay | undefined;
  let publisher: ReturnType<typeof createAckedPublisher> | undefined;
  let consumers: Consumer[] = [];
  let workers: Worker[] = [];
  let wired = false;
  const timers: NodeJS.Timeout[] = [];

  // Disconnected, a lifecycle event would only wait out its timeout (at shutdown, 2 s of it).
  const system = createSystemEvents({ js: () => (connection?.state.connected() ? nats?.js : undefined), names, log, service: spec.name, instance, version: spec.version });
  const readiness = createReadiness();
  // /readyz is often reachable from outside and its checks go to the SYSTEM stream: a driver's
  // message (hosts, ports, user and database names) goes to the log, the endpoint gets a category.
  class NotReady extends Error {}
  let lastDatabaseError: string | undefined;
  readiness.add({
    name: "database",
    check: async () => {
      try {
        await database.ping();
        if (!migrated) {
          if (config.MIGRATE_ON_START) throw new NotReady("migrations not applied yet");
          // Migrations are a Job's (or an operator's) to run: ready only once they are all in.
          const pending = await countPendingMigrations();
          if (pending > 0) throw new NotReady(`${pending} migration(s) not applied yet; run migrate`);
        }
        lastDatabaseError = undefined;
      } catch (err) {
        if (err instanceof NotReady) throw err;
        const reason = reportableError(err).message;
        if (reason !== lastDatabaseError) log.warn({ err: reason }, "database check failing");
        lastDatabaseError = reason;
        throw new NotReady(isTransientDbError(err) ? "unreachable (the service log has the reason)" : "failing (the service log has the reason)");
      }
    },
  });
  readiness.add({
    name: "nats",
    check: () => {
      // With MIGRATE_ON_START, NATS is connected after the migrations: say what start-up waits on.
      if (!connection) throw new Error(config.MIGRATE_ON_START && !migrated ? "not connected yet (start-up is applying migrations first)" : "not connected yet");
      if (connection.nc.isClosed()) throw new Error("connection closed for good; restarting");
      if (!wired) throw new Error(!connection.state.connected() ? "disconnected; reconnecting" : nats ? "streams and consumers not set up yet" : "connected; JetStream not answering yet");
      // Once set up, losing NATS does not take the service out of rotation: writes commit with
      // their events in the outbox, published when it is back, and reads need only the database.
      // Failing readiness here would turn a broker outage into an outage of every replica.
      if (!connection.state.connected()) throw new Degraded("disconnected; reconnecting (events wait until it is back)");
    },
  });

  const app = spec.buildApp({ db: database.db, published: (messages) => relay?.handOff(messages), names });
  registerHealthRoutes(app, readiness);
  app.whileSchemaPending(() => !migrated);
  app.answerWithin(config.REQUEST_DEADLINE_MS);
  const metrics = config.METRICS_PORT > 0 ? createMetrics({ service: spec.name, outbox: spec.outbox !== false }) : undefined;
  if (metrics) {
    app.observeRequests(metrics.observeRequest);
    watchOnScrape(metrics);
  }

  const isProbe = (req: Request) => {
    const path = new URL(req.url).pathname;
    return path === "/healthz" || path === "/readyz";
  };
  // The node adapter's env ({ incoming, outgoing }) is passed on: jsonBody relies on it.
  const draining = async (req: Request, env: object | undefined) => {
    if (!isProbe(req)) {
      // Counted like any answer (under route "draining": no route ran), so a drain that turned
      // clients away shows in the scrape the metrics server still serves.
      metrics?.observeRequest(req.method, "draining", 503, 0);
      // Retry-After: a retry reaches another replica (this one has left the Service's endpoints).
      return problemResponse(problem(503, "Service Unavailable", "the service is shutting down"), { connection: "close", "retry-after": "1" });
    }
    // While draining, every answer closes its connection: a keep-alive socket (a prober, an
    // ingress, a mesh sidecar) would otherwise hold server.close() until the deadline.
    const res = await app.fetch(req, env);
    const closing = new Response(res.body, res);
    closing.headers.set("connection", "close");
    return closing;
  };
  const fetch = (req: Request, env: object | undefined) => (readiness.shuttingDown ? draining(req, env) : app.fetch(req, env));
  const server: HttpServer = await startHttpServer(fetch, config.PORT, config.HOST);
  const metricsServer: MetricsServer | undefined = metrics && (await startMetricsServer(metrics, config.METRICS_PORT, config.HOST).catch(async (err: unknown) => {
    await server.close();
    throw err;
  }));
  log.info({ port: server.port, metricsPort: metricsServer?.port, instance, version: spec.version }, "listening");

  const started = (async () => {
    if (config.MIGRATE_ON_START) {
      // Checked first: drizzle would apply this service's newer migrations to another's schema.
      await checkMigrations();
      await retryUntilDone("migrations", () => database.migrate(spec.migrationsFolder), log, abort.signal);
      migrated = true;
    }
    const { nc, state } = await connectNats(
      { config, name: `${spec.name}@${instance}`, log },
      abort.signal,
    );
    connection = { nc, state };
    // nats.js gives up for good after repeated authorization errors (a rotated token, an expired
    // JWT): nothing would publish or consume again while HTTP kept answering. Exit instead, so
    // the orchestrator restarts the process and it reads its credentials anew. Watched from the
    // moment it connects, so no start-up step waits on a connection that is gone.
    void nc.closed().then((err) => {
      if (readiness.shuttingDown || abort.signal.aborted) return;
      log.error({ err: err ? reportableError(err).message : undefined }, "NATS connection closed for good; exiting to be restarted");
      void shutdown("NATS connection closed", 1);
    });
    // A request to the server (account info): JetStream may still be starting, or electing a
    // meta leader, when the connection is already up.
    const jsm = await retryUntilDone("JetStream", () => jetstreamManager(nc), log, abort.signal);
    nats = { js: jetstream(nc), jsm };
    const { js } = nats;
    const streams = [...new Set<StreamName>([...(spec.streams ?? streamsOf(spec)), "DLQ", "SYSTEM"])];
    const setUpStreams = () =>
      ensureStreams(jsm, names, streams, {
        replicas: config.STREAM_REPLICAS,
        maxAgeMs: config.STREAM_MAX_AGE_MS,
        deadLetterMaxAgeMs: config.DLQ_MAX_AGE_MS,
        onUnderReplicated: (stream, asked, copies) =>
          log.warn({ stream, asked, copies }, "stream has fewer copies than STREAM_REPLICAS asks for: a single server (not a cluster) keeps one, whatever its config says"),
      });
    await retryUntilDone("stream setup", setUpStreams, log, abort.signal);
    // Streams can vanish while the service runs (a JetStream store lost with its volume, a stream
    // deleted): whoever finds out creates them again, or publishes and consumers fail for ever.
    const restoreStreams = streamRestorer(setUpStreams, log);
    // No relay, consumer or worker before the schema is in: with migrations left to a Job
    // (kubectl apply starts the Job and the pods together), a consumer started early would fail
    // every event on a missing table and, after its retries, dead-letter them.
    if (!migrated) await waitForMigrations();
    const missing = await retryUntilDone(
      "schema check",
      () => missingTables(database.db, [...(spec.outbox !== false ? ["outbox"] : []), ...(spec.consumers.length > 0 ? ["inbox"] : [])]),
      log,
      abort.signal,
    );
    if (missing.length > 0) {
      throw new StartupError(
        `table ${missing.join(" and ")} missing after all migrations: export ${missing.join(" and ")} from @orderflow/shared/tables in the service's drizzle schema and generate a migration (see README, Adding a service)`,
      );
    }
    abort.signal.throwIfAborted();
    if (spec.outbox !== false) {
      relay = createOutboxRelay({
        db: database.db,
        js: (publisher = createAckedPublisher(nc)),
        names,
        log,
        pollMs: config.OUTBOX_POLL_MS,
        onPublish: metrics && ((stored) => (stored ? metrics.countPublished(1) : metrics.countPublishFailures(1))),
        connected: () => state.connected(),
        onNoStream: () => void restoreStreams().catch((err: unknown) => log.warn({ err: reportableError(err).message }, "could not recreate the streams; retrying on the next failure")),
      });
      relay.start();
    }
    consumers = spec.consumers.map((c) =>
      createConsumer({
        ...c,
        nc,
        js,
        jsm,
        db: database.db,
        names,
        log,
        retry: { delaysMs: config.RETRY_DELAYS_MS, maxDeliver: config.MAX_DELIVER },
        restoreStreams,
        instance,
        onCommitted: (messages) => relay?.handOff(messages),
        onOutcome: metrics && ((outcome, n) => metrics.countEvents(c.durable, outcome, n)),
        onLatency: metrics?.eventLatency(c.durable),
      }),
    );
    for (const [i, c] of consumers.entries()) {
      await retryUntilDone(`consumer ${spec.consumers[i]!.durable}`, () => c.start(), log, abort.signal);
    }
    workers = spec.workers?.({ nc, js, jsm, db: database.db, names, log, restoreStreams, countEvents: metrics?.countEvents, eventLatency: metrics?.eventLatency }) ?? [];
    for (const w of workers) await retryUntilDone(w.name, () => w.start(), log, abort.signal);
    wired = true;
    readiness.invalidate();
    log.info("ready");
    void system.publish("system.service.started");
    watchReadiness();
    for (const job of spec.periodic ?? []) {
      const timer = setInterval(() => {
        job.run(database.db, log).catch((err) => log.warn({ job: job.name, err: reportableError(err).message }, "periodic job failed"));
      }, job.everyMs);
      timer.unref();
      timers.push(timer);
    }
  })();
  started.catch((err) => {
    if (abort.signal.aborted) return;
    // Every step that waits on a dependency retries by itself, so what reaches here would not
    // get better by waiting (every migration has run and a table is still missing, a bug), and
    // an unready pod that stays up says nothing: exit, so it is restarted and the reason logged.
    if (err instanceof StartupError) log.error(err.message);
    else log.error({ err: reportableError(err) }, "start-up failed");
    void shutdown("start-up failed", 1);
  });

  /** Migrations left to apply (by the migrate Job); none left marks the service migrated. */
  async function countPendingMigrations() {
    const pending = await pendingMigrations(database.db, spec.migrationsFolder).catch(refuseForeign);
    if (pending === 0) migrated = true;
    return pending;
  }

  /**
   * countPendingMigrations, retried while the database cannot answer. A database holding another
   * service's migrations (DATABASE_URL names the wrong one) is not retried: no migrate Job fixes
   * it, and waiting would look like a slow Job. Nor migrated: drizzle would apply this service's
   * newer migrations to the other's schema.
   */
  async function checkMigrations(): Promise<number> {
    const outcome = await retryUntilDone("migration check", () => countPendingMigrations().catch((err: unknown) => (err instanceof StartupError ? err : Promise.reject(err))), log, abort.signal);
    if (outcome instanceof StartupError) throw outcome;
    return outcome;
  }

  function refuseForeign(err: unknown): never {
    if (!(err instanceof ForeignMigrationsError)) throw err;
    throw new StartupError(err.explain(redactUrl(config.DATABASE_URL), spec.name));
  }

  /** Until every committed migration is applied (by the migrate Job), saying so when the count changes. */
  async function waitForMigrations() {
    let said: number | undefined;
    for (;;) {
      const pending = await checkMigrations();
      if (pending === 0) return;
      if (pending !== said) log.info({ pending }, "waiting for migrations (run migrate) before starting the relay and consumers");
      said = pending;
      await abortableDelay(1000, abort.signal);
    }
  }

  // Publishes ready / not_ready whenever readiness changes, so the event log shows outages.
  let readinessTimer: NodeJS.Timeout | undefined;
  function watchReadiness() {
    let last: boolean | undefined;
    const tick = async () => {
      const { ready, checks } = await readiness.evaluate();
      if (ready !== last && !readiness.shuttingDown) {
        last = ready;
        const failing = Object.fromEntries(Object.entries(checks).filter(([, v]) => v !== "ok"));
        await system.publish(ready ? "system.service.ready" : "system.service.not_ready", ready ? {} : { checks: failing });
      }
      readinessTimer = setTimeout(tick, 2000);
      readinessTimer.unref();
    };
    void tick();
  }

  /** Gauges read when Prometheus scrapes: consumer lag, outbox backlog, dead letters, dependencies. */
  function watchOnScrape(m: Metrics) {
    // One consumer-info round per scrape, shared by the two gauges that read it.
    let infosRead: { at: number; infos: Promise<({ c: { stream: StreamName; durable: string }; info: ConsumerInfo } | undefined)[]> } | undefined;
    const consumerInfos = () => {
      if (!nats) return Promise.resolve([]);
      if (infosRead && performance.now() - infosRead.at < 1000) return infosRead.infos;
      const { jsm } = nats;
      const durables = [...spec.consumers, ...workers.flatMap((w) => (w.durable ? [w.durable] : []))];
      const infos = Promise.all(durables.map((c) => jsm.consumers.info(names.stream(c.stream), names.durable(c.durable)).then((info) => ({ c, info }), () => undefined)));
      infosRead = { at: performance.now(), infos };
      return infos;
    };
    m.gaugeOnScrape("orderflow_consumer_messages", "Messages of a durable consumer: pending (not delivered yet), ack_pending (delivered, not acked), redelivered", ["consumer", "state"], async () => {
      const infos = await consumerInfos();
      return infos.flatMap((x) =>
        x
          ? [
              { labels: { consumer: x.c.durable, state: "pending" }, value: x.info.num_pending },
              { labels: { consumer: x.c.durable, state: "ack_pending" }, value: x.info.num_ack_pending },
              { labels: { consumer: x.c.durable, state: "redelivered" }, value: x.info.num_redelivered },
            ]
          : [],
      );
    });
    // Held events expire with their stream's max_age: this is what to alert on before they do.
    m.gaugeOnScrape(
      "orderflow_consumer_oldest_unacked_age_seconds",
      "Age of the oldest message past a durable consumer's ack floor (the oldest it may not have applied yet); 0 when it has acked everything",
      ["consumer"],
      async () => {
        const infos = await consumerInfos();
        const ages = await Promise.all(
          infos.map(async (x) => {
            if (!x || !nats) return undefined;
            const value = await oldestUnackedAgeSeconds(nats.jsm, x.info);
            return value === undefined ? undefined : { labels: { consumer: x.c.durable }, value };
          }),
        );
        return ages.filter((a) => a !== undefined);
      },
    );
    m.gaugeOnScrape("orderflow_dlq_messages", "Dead letters in the namespace's DLQ stream (every consumer's)", [], async () =>
      // Not connected yet (started while NATS is down): unknown, not an empty DLQ.
      nats ? [{ labels: {}, value: (await nats.jsm.streams.info(names.stream("DLQ"))).state.messages }] : undefined,
    );
    if (spec.outbox !== false) {
      m.gaugeOnScrape("orderflow_outbox_backlog", "Outbox rows not published yet", [], async () => {
        const [row] = await executeRows<{ n: number }>(database.db, sql`select count(*)::int as n from outbox`);
        return [{ labels: {}, value: row!.n }];
      });
    }
    m.gaugeOnScrape("orderflow_dependency_up", "1 when a readiness check passes (database, nats), else 0", ["check"], async () => {
      const { checks } = await readiness.evaluate();
      return Object.entries(checks)
        .filter(([name]) => name !== "shutdown")
        .map(([check, state]) => ({ labels: { check }, value: state === "ok" ? 1 : 0 }));
    });
  }

  const shutdown = installShutdown({
    log,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: "readiness", run: () => { readiness.markShuttingDown(); spec.onShuttingDown?.(); } },
      { name: "announce", run: () => { clearTimeout(readinessTimer); timers.forEach(clearInterval); return system.publish("system.service.stopping"); } },
      { name: "start-up", run: () => abort.abort() },
      { name: "http", run: () => server.close() },
      { name: "consumers", run: () => Promise.all([...consumers, ...workers].map((c) => c.stop())).then(() => {}) },
      // Let hand-overs finish, then publish what is left (all of it: nothing else is publishing
      // now); anything that still cannot go out is published on the next start.
      {
        name: "outbox",
        run: async () => {
          if (!relay) return;
          if (!connection?.state.connected()) {
            // Disconnected, publishes in flight would each wait out their ack timeout, and a
            // final poll would hold its transaction open meanwhile: their rows stay instead.
            publisher?.close();
            await relay.stop();
            return log.info("NATS not connected; the outbox is published on the next start");
          }
          await relay.stop();
          // Batch after batch until none is left: one claim takes at most a batch, and the rows
          // may be thousands (NATS back after a pause). Published rows are deleted, so this ends;
          // a batch nothing of which goes out throws. The shutdown deadline bounds it too.
          try {
            while ((await relay.relayOnce({ all: true })) > 0);
          } catch (err) {
            log.warn({ err: reportableError(err).message }, "outbox not emptied at shutdown; what is left is published on the next start");
          }
        },
      },
      // A drain needs the server; disconnected, there is nothing to flush to, so close.
      { name: "nats", run: async () => { if (connection && !connection.nc.isClosed()) await (connection.state.connected() ? connection.nc.drain() : connection.nc.close()); } },
      { name: "database", run: () => database.close() },
      // Last, so the drain itself can still be scraped.
      { name: "metrics", run: () => metricsServer?.close() },
    ],
  });

  return { port: server.port, metricsPort: metricsServer?.port, database, started, shutdown };
}

/**
 * The `migrate` entry point (the Helm hook Job runs it): apply migrations and exit 0, or exit 1
 * with the reason; exit 2 when DATABASE_URL is missing or malformed.
 */
export async function runMigrateCommand(service: string, migrationsFolder: string, env: Record<string, string | undefined>): Promise<void> {
  const config = loadConfigOrExit(baseConfigSchema.pick({ DATABASE_URL: true, LOG_LEVEL: true }), env, `${service} migrate`);
  const log = createLogger({ service, level: config.LOG_LEVEL });
  try {
    const database = await openDatabase(config.DATABASE_URL, { poolSize: 1, applicationName: `${service}-migrate` });
    try {
      // A URL that is not a Postgres would otherwise keep it reconnecting for ever.
      await pingWithin(database, 30_000);
      await database.migrate(migrationsFolder);
      log.info({ folder: migrationsFolder }, "migrations applied");
    } finally {
      await database.close();
    }
  } catch (err) {
    // The driver's reason (a missing relation, a refused role), not drizzle's "Failed query" and its SQL.
    process.stderr.write(`${service} migrate: ${reportableError(err).message}\n`);
    process.exit(1);
  }
}

/** Which of these tables do not exist (to_regclass follows the search_path, as the queries do). */
async function missingTables(db: Db, tables: string[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const rows = await executeRows<{ name: string }>(db, sql`select name from unnest(${`{${tables.join(",")}}`}::text[]) as t(name) where to_regclass(name) is null`);
  return rows.map((r) => r.name);
}
