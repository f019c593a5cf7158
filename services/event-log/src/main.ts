import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connectNats, createLogger, createNames, loadConfigOrExit, retryUntilDone, runService, type StreamName } from "@orderflow/shared";
import { createApp } from "./app.js";
import { configSchema } from "./config.js";
import { createTail, type Tail } from "./events/events.tail.js";
import { createIngestConsumer, type IngestConsumer } from "./ingest/ingest.consumer.js";
import { createEventWriter } from "./ingest/ingest.store.js";

const NAME = "event-log";
const VERSION = process.env.npm_package_version ?? "0.1.0";
const STREAMS: StreamName[] = ["USERS", "ORDERS", "SYSTEM", "DLQ"];

// The composition root: config → logger → the shared service boot (database, HTTP, migrations,
// streams, system events, shutdown) → one ingest consumer per stream once that is up.
async function main() {
  const config = loadConfigOrExit(configSchema, process.env, NAME);
  const log = createLogger({ service: NAME, level: config.LOG_LEVEL, instance: config.SERVICE_INSTANCE });
  let tail: Tail | undefined;
  const service = await runService({
    name: NAME,
    version: VERSION,
    config,
    log,
    migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
    streams: STREAMS,
    buildApp: ({ db, names }) => {
      tail = createTail({ db, log, pollMs: config.TAIL_POLL_MS });
      return createApp({ db, log, tail, version: VERSION, namespace: names.namespace });
    },
    // The log stores raw messages in batches, invalid ones included, so it runs its own consumers below.
    consumers: [],
  });

  const abort = new AbortController();
  let ingest: IngestConsumer[] = [];
  let nc: Awaited<ReturnType<typeof connectNats>>["nc"] | undefined;
  const stop = async () => {
    abort.abort();
    tail?.close();
    await Promise.all(ingest.map((i) => i.stop()));
    await nc?.drain().catch(() => {});
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());

  await service.started;
  const instance = config.SERVICE_INSTANCE ?? hostname();
  ({ nc } = await connectNats(
    { url: config.NATS_URL, name: `${NAME}-ingest@${instance}`, log, user: config.NATS_USER, password: config.NATS_PASSWORD, token: config.NATS_TOKEN },
    abort.signal,
  ));
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const names = createNames(config.NATS_NAMESPACE);
  const writer = createEventWriter({ db: service.database.db, onStored: () => tail?.notify() });
  ingest = STREAMS.map((stream) => createIngestConsumer({ js, jsm, names, log, writer, stream, batchSize: config.INGEST_BATCH_SIZE }));
  for (const i of ingest) await retryUntilDone("event log consumer", () => i.start(), log, abort.signal);
  log.info({ streams: STREAMS }, "event log ingesting");
}

main().catch((err) => {
  if ((err as Error).name === "AbortError") return;
  process.stderr.write(`${NAME}: failed to start: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
