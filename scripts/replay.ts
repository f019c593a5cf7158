/**
 * `npm run replay -- --service order-service|user-service|event-log [--from-seq N | --from-time T] [--dry-run]`:
 * runs the service's own replay entry (services/<name>/dist/replay.js) against its database.
 * DATABASE_URL wins; otherwise the same defaults as `npm start` (USER_/ORDER_/EVENTLOG_DATABASE_URL
 * or PGlite under .data/). NATS from NATS_URL (default nats://127.0.0.1:4222).
 */
import { spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const env = process.env;
const dataDir = resolve(env.ORDERFLOW_DATA_DIR ?? join(root, ".data"));
const targets: Record<string, { db?: string }> = {
  "user-service": { db: env.USER_DATABASE_URL },
  "order-service": { db: env.ORDER_DATABASE_URL },
  "event-log": { db: env.EVENTLOG_DATABASE_URL },
};
const usage = "usage: npm run replay -- --service order-service|user-service|event-log [--from-seq N | --from-time T] [--dry-run]";

const args = process.argv.slice(2);
const i = args.findIndex((a) => a === "--service" || a.startsWith("--service="));
const service = i < 0 ? undefined : args[i]!.includes("=") ? args[i]!.split("=")[1] : args[i + 1];
if (!service || !(service in targets)) {
  process.stderr.write(`replay: ${service ? `unknown service ${service}` : "--service is required"}\n${usage}\n`);
  process.exit(2);
}

const target = targets[service]!;
// PGlite is one process's files: with `npm start` running, the replay's open of the same data
// directory is refused (a pid file in it, see lockDataDirectory) instead of corrupting it.
const db = env.DATABASE_URL || target.db || `pglite://${join(dataDir, service)}`;
const child = spawn(process.execPath, [join(root, "services", service, "dist", "replay.js"), ...args], {
  cwd: join(root, "services", service),
  env: { ...env, DATABASE_URL: db },
  stdio: "inherit",
});
child.once("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
