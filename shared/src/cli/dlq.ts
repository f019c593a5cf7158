import { parseArgs } from "node:util";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { baseConfigSchema, ConfigError, loadConfig, redactUrl } from "../config/config.js";
import { natsClientOptions } from "../nats/connect.js";
import { createNames } from "../nats/names.js";
import { isMain } from "../lifecycle/is-main.js";
import {
  DeadLetterNotFoundError,
  formatDeadLetter,
  ReplayPublishError,
  formatDeadLetterTable,
  getDeadLetter,
  pageDeadLetters,
  purgeDeadLetter,
  ReplayAllError,
  replayAllDeadLetters,
  replayDeadLetter,
  type DlqDeps,
} from "./dead-letters.js";

/** How many dead letters `list` prints unless told: a table a terminal can still show. */
export const DEFAULT_LIST_LIMIT = 1000;
const MAX_LIST_LIMIT = 100_000;

export const dlqUsage = `usage: dlq <command>
  list [--from <seq>] [--limit <n>]
                     dead letters, oldest first: seq, time, consumer, subject, error, message, deliveries
                     (at most ${DEFAULT_LIST_LIMIT} unless --limit says otherwise; it prints where the next page starts)
  show <seq>         one dead letter's headers and payload
  replay <seq>       republish it to its original subject (new Nats-Msg-Id), then delete it
  replay --all       replay every dead letter, oldest first (exit 1 if any could not be)
  purge <seq>        delete one dead letter without replaying it
environment: NATS_URL, NATS_NAMESPACE, NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_CREDS_FILE, NATS_INBOX_PREFIX`;

/** Bad command-line input: the CLI prints the message and the usage and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export type DlqCommand =
  | { verb: "help" }
  | { verb: "list"; from?: number; limit: number }
  | { verb: "show"; seq: number }
  | { verb: "replay"; seq: number }
  | { verb: "replay-all" }
  | { verb: "purge"; seq: number };

function parseSeq(raw: string | undefined, verb: string): number {
  if (raw === undefined) throw new UsageError(`${verb} needs a dead-letter sequence number`);
  // At most 15 digits, so the number is exact (2^53 has 16); real sequences never get there.
  if (!/^[1-9][0-9]{0,14}$/.test(raw)) throw new UsageError(`"${raw}" is not a sequence number (a positive integer)`);
  return Number(raw);
}

function parseList(args: readonly string[]): DlqCommand {
  let values;
  try {
    ({ values } = parseArgs({ args: [...args], options: { from: { type: "string" }, limit: { type: "string" } }, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let limit = DEFAULT_LIST_LIMIT;
  if (values.limit !== undefined) {
    if (!/^[1-9][0-9]{0,5}$/.test(values.limit) || Number(values.limit) > MAX_LIST_LIMIT) {
      throw new UsageError(`--limit must be a whole number from 1 to ${MAX_LIST_LIMIT}, not "${values.limit}"`);
    }
    limit = Number(values.limit);
  }
  return { verb: "list", limit, ...(values.from === undefined ? {} : { from: parseSeq(values.from, "--from") }) };
}

/** Parses argv after the program name; throws UsageError for anything it does not know. */
export function parseDlqArgs(argv: readonly string[]): DlqCommand {
  const [verb, arg] = argv;
  const noMore = (n: number) => {
    if (argv.length > n) throw new UsageError(`unexpected argument "${argv[n]}"`);
  };
  switch (verb) {
    case "list":
      return parseList(argv.slice(1));
    case "show":
    case "purge":
      noMore(2);
      return { verb, seq: parseSeq(arg, verb) };
    case "replay":
      noMore(2);
      if (arg === "--all") return { verb: "replay-all" };
      return { verb: "replay", seq: parseSeq(arg, verb) };
    case "help":
    case "--help":
    case "-h":
      noMore(1);
      return { verb: "help" };
    case undefined:
      throw new UsageError("no command given");
    default:
      throw new UsageError(`unknown command "${verb}"`);
  }
}

export interface Output {
  out(line: string): void;
  err(line: string): void;
}

/** Runs one parsed command against the DLQ; returns the process exit code. */
export async function runDlqCommand(cmd: DlqCommand, deps: DlqDeps, io: Output): Promise<number> {
  try {
    switch (cmd.verb) {
      case "list": {
        const { letters, total, next } = await pageDeadLetters(deps, { limit: cmd.limit, from: cmd.from });
        io.out(formatDeadLetterTable(letters));
        const from = cmd.from === undefined ? "" : ` from seq ${cmd.from}`;
        io.out(`${letters.length} dead letter(s) shown${from}; ${total} in ${deps.names.stream("DLQ")}`);
        if (next !== undefined) io.out(`more after these: dlq list --from ${next}${cmd.limit === DEFAULT_LIST_LIMIT ? "" : ` --limit ${cmd.limit}`}`);
        return 0;
      }
      case "help":
        io.out(dlqUsage);
        return 0;
      case "show":
        io.out(formatDeadLetter(await getDeadLetter(deps, cmd.seq)));
        return 0;
      case "replay": {
        const r = await replayDeadLetter(deps, cmd.seq).catch((err: unknown) => {
          if (!(err instanceof ReplayPublishError)) throw err;
          // The publish failed, so the letter was left where it was: say so, as replay --all does.
          const maybe = err.timedOut ? " (its copy may have been published all the same; replaying it again is safe, consumers' inboxes skip a second copy)" : "";
          throw new Error(`replaying dead letter ${cmd.seq} failed: ${err.message}; it is still in the DLQ${maybe}`, { cause: err });
        });
        io.out(`replayed dead letter ${r.dlqSeq} to ${r.subject} as ${r.msgId} (stream seq ${r.streamSeq}); removed from the DLQ`);
        return 0;
      }
      case "replay-all": {
        // Each line as it happens, so a run that stops midway has already said what it did.
        const { replayed, skipped } = await replayAllDeadLetters(deps, {
          onReplayed: (r) => io.out(`replayed dead letter ${r.dlqSeq} to ${r.subject} as ${r.msgId}`),
          onSkipped: (s) => io.err(`dlq: skipped dead letter ${s.seq}: ${s.reason}`),
        });
        io.out(`${replayed.length} dead letter(s) replayed${skipped.length ? `, ${skipped.length} skipped` : ""}`);
        return skipped.some((s) => !s.gone) ? 1 : 0;
      }
      case "purge":
        await purgeDeadLetter(deps, cmd.seq);
        io.out(`purged dead letter ${cmd.seq}`);
        return 0;
      default: {
        const never: never = cmd;
        throw new Error(`unhandled command ${JSON.stringify(never)}`);
      }
    }
  } catch (err) {
    if (err instanceof ReplayAllError) {
      io.err(`dlq: ${err.message}`);
      io.err(`dlq: ${err.report.replayed.length} dead letter(s) replayed before it; it and the ones after it are still in the DLQ`);
      return 1;
    }
    if (err instanceof DeadLetterNotFoundError) {
      io.err(`dlq: ${err.message}`);
      return 1;
    }
    if (/stream not found/i.test(String((err as Error)?.message))) {
      io.err(`dlq: stream ${deps.names.stream("DLQ")} does not exist (no service has started in namespace "${deps.names.namespace}")`);
      return 1;
    }
    throw err;
  }
}

const cliConfigSchema = baseConfigSchema.pick({ NATS_URL: true, NATS_NAMESPACE: true, NATS_USER: true, NATS_PASSWORD: true, NATS_TOKEN: true, NATS_CREDS_FILE: true, NATS_INBOX_PREFIX: true });

/**
 * The whole command: argv and env in, exit code out. A CLI fails fast instead of reconnecting
 * forever, so it connects once with a timeout.
 * @example await main(["list"], process.env, console)
 */
export async function main(argv: readonly string[], env: Record<string, string | undefined>, io: Output): Promise<number> {
  let cmd: DlqCommand;
  let config;
  try {
    cmd = parseDlqArgs(argv);
    if (cmd.verb === "help") {
      io.out(dlqUsage);
      return 0;
    }
    config = loadConfig(cliConfigSchema, env);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`dlq: ${err.message}\n${dlqUsage}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(`dlq: ${err.message}`);
      return 2;
    }
    throw err;
  }
  let nc: NatsConnection;
  try {
    nc = await connect({
      ...natsClientOptions(config),
      name: "orderflow-dlq",
      timeout: 5000,
      noAsyncTraces: true,
    });
  } catch (err) {
    io.err(`dlq: cannot connect to NATS at ${redactUrl(config.NATS_URL)}: ${(err as Error).message}`);
    return 1;
  }
  try {
    const deps: DlqDeps = { js: jetstream(nc), jsm: await jetstreamManager(nc), names: createNames(config.NATS_NAMESPACE) };
    return await runDlqCommand(cmd, deps, io);
  } catch (err) {
    io.err(`dlq: ${(err as Error).message}`);
    return 1;
  } finally {
    await nc.close().catch(() => {});
  }
}

// Runs only as a program (`node shared/dist/cli/dlq.js …`), never when imported by a test.
if (isMain(import.meta.url)) {
  const io: Output = { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) };
  // Exits rather than waiting for the event loop to empty: a connect that timed out against
  // something that is not NATS leaves nats.js's socket open, which held the command for ever.
  // (Writes to a pipe, a file or a terminal are synchronous here, so nothing printed is lost.)
  main(process.argv.slice(2), process.env, io).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`dlq: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
