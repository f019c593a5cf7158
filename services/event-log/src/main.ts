import { fileURLToPath } from "node:url";
import { packageVersion, serviceMain, streamCatalog, type StreamName } from "@orderflow/shared";
import { createApp } from "./app.js";
import { configSchema } from "./config.js";
import { createTail, type Tail } from "./events/events.tail.js";
import { createIngestConsumer, ingestDurable } from "./ingest/ingest.consumer.js";
import { createEventWriter } from "./ingest/ingest.store.js";
import { pruneOldEvents, retentionWarning } from "./retention/retention.js";

// The composition root: config → logger → the shared service boot (database, HTTP, migrations,
// streams, system events, shutdown) → one batch ingester per stream, started before "ready".
const NAME = "event-log";
const VERSION = packageVersion(import.meta.url);
// Every stream the catalog has: a stream added there is logged without an edit here.
const STREAMS = Object.keys(streamCatalog) as StreamName[];

let tail: Tail | undefined;

await serviceMain(
  {
    name: NAME,
    version: VERSION,
    configSchema,
    migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
    streams: STREAMS,
    buildApp: ({ db, log, names, config }) => {
      tail = createTail({ db, log, pollMs: config.TAIL_POLL_MS });
      return createApp({ db, log, tail, version: VERSION, namespace: names.namespace, natsUrl: config.NATS_URL });
    },
    // The log stores raw messages in batches, invalid ones included, so it runs ingesters of its
    // own instead of the shared per-event consumer runner.
    consumers: [],
    // It publishes nothing of its own (lifecycle events skip the outbox), so it has no outbox table.
    outbox: false,
    workers: ({ nc, js, jsm, names, log, db, restoreStreams, countEvents, eventLatency }, config) => {
      const writer = createEventWriter({ db, onStored: () => tail?.notify() });
      const ingesters = STREAMS.map((stream) => ({
        name: `ingest ${ingestDurable(stream)}`,
        durable: { stream, durable: ingestDurable(stream) },
        ...createIngestConsumer({ nc, js, jsm, names, log, writer, stream, batchSize: config.INGEST_BATCH_SIZE, restoreStreams, onOutcome: countEvents && ((outcome, n) => countEvents(ingestDurable(stream), outcome, n)), onLatency: eventLatency?.(ingestDurable(stream)) }),
      }));
      const warning = retentionWarning(config.EVENTLOG_MAX_AGE_MS, config.STREAM_MAX_AGE_MS);
      if (warning) log.warn({ EVENTLOG_MAX_AGE_MS: config.EVENTLOG_MAX_AGE_MS, STREAM_MAX_AGE_MS: config.STREAM_MAX_AGE_MS }, warning);
      return ingesters;
    },
    periodic: (config) =>
      config.EVENTLOG_MAX_AGE_MS > 0 ? [{ name: "prune old events", everyMs: 60_000, run: (db, log) => pruneOldEvents(db, log, config.EVENTLOG_MAX_AGE_MS).then(() => {}) }] : [],
    // Open SSE streams would otherwise hold the HTTP server open until the shutdown deadline.
    onShuttingDown: () => tail?.close(),
  },
  process.env,
);
