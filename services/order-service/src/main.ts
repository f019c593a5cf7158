import { fileURLToPath } from "node:url";
import { consumerFor, packageVersion, purgeIdempotencyKeys, serviceMain } from "@orderflow/shared";
import { createApp } from "./app.js";
import { userRegisteredHandlers } from "./consumers/user-registered.js";

// The composition root: config → logger → database, HTTP, NATS, relay, consumers → shutdown.
const NAME = "order-service";
const VERSION = packageVersion(import.meta.url);

await serviceMain(
  {
    name: NAME,
    version: VERSION,
    migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
    buildApp: ({ db, log, published }) => createApp({ db, log, published, version: VERSION }),
    // Streams: USERS and ORDERS, from what the catalog says it produces and what it consumes.
    consumers: [consumerFor(NAME, userRegisteredHandlers)],
    periodic: (config) => [{ name: "expire idempotency keys", everyMs: 10 * 60_000, run: (db) => purgeIdempotencyKeys(db, config.IDEMPOTENCY_TTL_MS) }],
  },
  process.env,
);
