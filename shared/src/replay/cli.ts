import { existsSync } from "node:fs";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { baseConfigSchema, loadConfigOrExit, NATS_CLIENT_VARIABLES, redactUrl } from "../config/config.js";
import { ForeignMigrationsError, openDatabase, pendingMigrations, pingWithin } from "../db/database.js";
import { reportableError } from "../db/errors.js";
import { createLogger } from "../logger/index.js";
import { connectNats, isCredentialError } from "../nats/connect.js";
import { createNames } from "../nats/names.js";
import { parseReplayArgs, ReplayUsageError, replayUsage } from "./args.js";
import { createProgressBar } from "./progress.js";
import { describeLost, IncompleteHistoryError, replay, ReplayInterruptedError, type ReplayResult, type ReplayTarget } from "./replay.js";

const replayConfigSchema = baseConfigSchema.pick({ ...NATS_CLIENT_VARIABLES, DATABASE_URL: true, LOG_LEVEL: true });

export const formatReplayResult = (name: string, r: ReplayResult) =>
  `${r.dryRun ? "dry run: " : ""}${name}: read ${r.read} events, ${r.dryRun ? "would apply" : "applied"} ${r.applied}, ` +
  `skipped ${r.skipped} (already applied), failed ${r.failed}${r.reset ? " (projection reset first)" : ""} in ${(r.ms / 1000).toFixed(1)} s`;

/**
 * Events a replay could not apply are not an error of the replay (the rest went in), but the read
 * model lacks them: exit 3 says so to a script, this line to the operator, with where to look.
 */
const describeFailed = (r: ReplayResult) =>
  (r.dryRun
    ? `dry run: ${r.failed} event(s) would fail to apply (undecodable, or no handler for their type; a dry run runs no handler, so what one would refuse is not counted; the warnings above name the first ones and why). `
    : `finished, but ${r.failed} event(s) could not be applied (undecodable, no handler, or a permanent handler error; the warnings above name the first ones and why). `) +
  "They are what the live consumer dead-letters: see `npm run dlq -- list`, fix the cause, and replay them from there";

/**
 * The body of each service's `replay` entry point: reads DATABASE_URL and NATS_* from `env`,
 * parses the flags, replays with a progress bar on stderr and prints the final count on stdout.
 * Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 3 finished but some events could
 * not be applied (a dry run: would not be), 130 interrupted.
 */
export async function runReplayCommand(
  target: ReplayTarget,
  argv: string[],
  env: Record<string, string | undefined>,
  { migrationsFolder }: { migrationsFolder?: string } = {},
): Promise<void> {
  let args;
  try {
    args = parseReplayArgs(argv);
  } catch (err) {
    if (!(err instanceof ReplayUsageError)) throw err;
    process.stderr.write(`replay: ${err.message}\n${replayUsage}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(`${replayUsage}\n`);
    process.exit(0);
  }
  const config = loadConfigOrExit(replayConfigSchema, env, "replay");
  const log = createLogger({ service: "replay", level: config.LOG_LEVEL === "info" ? "warn" : config.LOG_LEVEL, destination: process.stderr });
  // Opening a PGlite directory that holds no database (absent, or an empty folder) would create
  // one: a dry run that promised to write nothing would, and a real one would replay into tables
  // that do not exist. Every Postgres data directory has PG_VERSION, PGlite's included.
  const pgliteDir = config.DATABASE_URL.startsWith("pglite://") ? config.DATABASE_URL.slice("pglite://".length) : undefined;
  if (pgliteDir && pgliteDir !== "memory" && !existsSync(join(pgliteDir, "PG_VERSION"))) {
    process.stderr.write(`replay: there is no database at ${pgliteDir} (the service creates it when it first starts); nothing replayed\n`);
    process.exit(1);
  }
  let database;
  try {
    database = await openDatabase(config.DATABASE_URL, { poolSize: 2, applicationName: "replay" });
  } catch (err) {
    process.stderr.write(`replay: cannot open the database: ${reportableError(err).message}\n`);
    process.exit(1);
  }
  try {
    await pingWithin(database, 10_000);
  } catch (err) {
    await database.close().catch(() => {});
    process.stderr.write(`replay: cannot reach the database: ${reportableError(err).message}\n`);
    process.exit(1);
  }
  // A schema not (fully) migrated: a dry run would report what it cannot do, a real run fail midway.
  let pending = 0;
  try {
    pending = migrationsFolder ? await pendingMigrations(database.db, migrationsFolder) : 0;
  } catch (err) {
    await database.close().catch(() => {});
    // Another service's database passes a "newest migration" check whenever its newest migration
    // is newer than ours, and the replay would then fail (or write) against the wrong tables.
    process.stderr.write(
      err instanceof ForeignMigrationsError
        ? `replay: ${err.explain(redactUrl(config.DATABASE_URL), target.name)}; nothing replayed\n`
        : `replay: cannot tell whether the database's migrations are applied: ${reportableError(err).message}; nothing replayed\n`,
    );
    process.exit(1);
  }
  if (pending > 0) {
    await database.close().catch(() => {});
    process.stderr.write(`replay: the database has ${pending} migration(s) of ${target.name} not applied yet; run its migrate (or start it once) first; nothing replayed\n`);
    process.exit(1);
  }
  const abort = AbortSignal.timeout(15_000);
  let nc;
  try {
    ({ nc } = await connectNats({ config, name: "replay", log, giveUpOn: isCredentialError }, abort));
  } catch (err) {
    await database.close();
    process.stderr.write(
      isCredentialError(err)
        ? `replay: NATS at ${redactUrl(config.NATS_URL)} refused the credentials: ${(err as Error).message}\n`
        : `replay: NATS is not reachable at ${redactUrl(config.NATS_URL)}\n`,
    );
    process.exit(1);
  }
  // Ctrl-C (or SIGTERM) stops after the batch in hand, so the command can say where it left off;
  // a second one exits at once.
  const interrupted = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted.signal.aborted) process.exit(130);
    process.stderr.write(`\nreplay: ${signal}: stopping after the batch in hand (again to quit at once)\n`);
    interrupted.abort();
  };
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  const bar = createProgressBar({ label: `${target.name} ` });
  let applying = false;
  try {
    const result = await replay({
      js: jetstream(nc),
      jsm: await jetstreamManager(nc),
      names: createNames(config.NATS_NAMESPACE),
      db: database.db,
      target,
      fromSeq: args.fromSeq,
      fromTime: args.fromTime,
      dryRun: args.dryRun,
      force: args.force,
      signal: interrupted.signal,
      log,
      onProgress: (read, total, c) => {
        // The first report comes once a full rebuild has reset the read model.
        applying = true;
        bar.update(read, total, `applied ${c.applied} skipped ${c.skipped} failed ${c.failed}`);
      },
    });
    bar.done();
    if (result.lost.length > 0) {
      process.stderr.write(
        `replay: ${result.dryRun ? "a full rebuild would lose" : "rebuilt without"} what the streams no longer hold (${describeLost(result.lost)})${result.dryRun ? "; it needs --force" : ""}\n`,
      );
    }
    process.stdout.write(`${formatReplayResult(target.name, result)}\n`);
    if (result.failed > 0) {
      process.stderr.write(`replay: ${describeFailed(result)}\n`);
      process.exitCode = 3;
    }
  } catch (err) {
    bar.done();
    process.stderr.write(`replay: ${err instanceof IncompleteHistoryError || err instanceof ReplayInterruptedError ? err.message : reportableError(err).message}\n`);
    // A full rebuild commits its reset first and then applies batches in transactions of their
    // own (one transaction for a whole stream would hold its locks for the whole replay): one
    // that fails part way leaves the read model partly rebuilt until it is run again.
    if (applying && args.fromSeq === undefined && args.fromTime === undefined && !args.dryRun) {
      process.stderr.write("replay: the read model was reset and is only partly rebuilt; run the same command again to finish it\n");
    }
    process.exitCode = err instanceof ReplayInterruptedError ? 130 : 1;
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
    // A connection that lost its server for good cannot drain, and closing it is what stops its
    // reconnect loop (connectNats retries without end), which would keep this process alive.
    await nc.drain().catch(() => nc.close().catch(() => {}));
    await database.close();
  }
}
