import { fileURLToPath } from "node:url";
import { createLogger, loadConfigOrExit, purgeIdempotencyKeys, runService } from "@orderflow/shared";
import { createApp } from "./app.js";
import { configSchema } from "./config.js";
import { userRegisteredHandlers } from "./consumers/user-registered.js";

const NAME = "order-service";
const VERSION = process.env.npm_package_version ?? "0.1.0";

// The composition root: config → logger → database, HTTP, NATS, relay, consumers → shutdown.
async function main() {
  const config = loadConfigOrExit(configSchema, process.env, NAME);
  const log = createLogger({ service: NAME, level: config.LOG_LEVEL, instance: config.SERVICE_INSTANCE });
  await runService({
    name: NAME,
    version: VERSION,
    config,
    log,
    migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
    streams: ["USERS", "ORDERS"],
    buildApp: ({ db, published }) => createApp({ db, log, published, version: VERSION }),
    periodic: [{ name: "expire idempotency keys", everyMs: 10 * 60_000, run: (db) => purgeIdempotencyKeys(db, config.IDEMPOTENCY_TTL_MS) }],
    consumers: [{ stream: "USERS", durable: NAME, filterSubject: "users.registered", handlers: userRegisteredHandlers }],
  });
}

main().catch((err) => {
  process.stderr.write(`${NAME}: failed to start: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
