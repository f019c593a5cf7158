import { parseArgs } from "node:util";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { baseConfigSchema, ConfigError, loadConfig, NATS_CLIENT_VARIABLES, redactUrl } from "../config/config.js";
import { natsClientOptions, timeoutCause } from "../nats/connect.js";
import { createNames } from "../nats/names.js";
import { isMain } from "../lifecycle/is-main.js";
import { repeatedFlag } from "./flags.js";
import {
  DeadLetterNotFoundError,
  formatDeadLetter,
  ReplayPublishError,
  formatDeadLetterTable,
  getDeadLetter,
  pageDeadLetters,
  deadLetterConsumers,
  purgeAllDeadLetters,
  purgeDeadLetter,
  ReplayAllError,
  replayAllDeadLetters,
  replayDeadLetter,
  removedByOtherNote,
  type DlqDeps,
} from "./dead-letters.js";

/** How many dead letters `list` prints unless told: a table a terminal can still show. */
export const DEFAULT_LIST_LIMIT = 1000;
const MAX_LIST_LIMIT = 100_000;

export const dlqUsage = `usage: dlq <command>
  list [--from <seq>] [--limit <n>] [--consumer <name>]
                     dead letters (of that consumer), oldest first: seq, time, consumer, subject, error, message, deliveries
                     (at most ${DEFAULT_LIST_LIMIT} unless --limit says otherwise; it prints where the next page starts)
  show <seq>         one dead letter's headers and payload
  replay <seq>       republish it to its original subject (new Nats-Msg-Id), then delete it
  replay --all [--consumer <name>]
                     replay every dead letter (of that consumer), oldest first (exit 1 if any could not be);
                     Ctrl-C stops after the letter in hand and prints what was replayed (exit 130), a second one at once
  purge <seq>        delete one dead letter without replaying it
  purge --all [--consumer <name>]
                     delete every dead letter (of that consumer) stored before it starts, without replaying them
  help, <command> --help, -h
                     this text
exit codes: 0 done; 1 failed (the message says why); 2 bad usage or configuration; 130 interrupted
environment: NATS_URL, NATS_NAMESPACE, NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_CREDS_FILE, NATS_TLS_CA_FILE,
  NATS_TLS_CERT_FILE/NATS_TLS_KEY_FILE, NATS_INBOX_PREFIX`;

/** Bad command-line input: the CLI prints the message and the usage and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export type DlqCommand =
  | { verb: "help" }
  | { verb: "list"; from?: number; limit: number; consumer?: string }
  | { verb: "show"; seq: number }
  | { verb: "replay"; seq: number }
  | { verb: "replay-all"; consumer?: string }
  | { verb: "purge"; seq: number }
  | { verb: "purge-all"; consumer?: string };

function parseSeq(raw: string | undefined, verb: string): number {
  if (raw === undefined) throw new UsageError(`${verb} needs a dead-letter sequence number`);
  // At most 15 digits, so the number is exact (2^53 has 16); real sequences never get there.
  if (!/^[1-9][0-9]{0,14}$/.test(raw)) throw new UsageError(`"${raw}" is not a sequence number (a whole number from 1 to 999999999999999)`);
  return Number(raw);
}

function parseList(args: readonly string[]): DlqCommand {
  let values;
  let tokens;
  try {
    ({ values, tokens } = parseArgs({ args: [...args], options: { from: { type: "string" }, limit: { type: "string" }, consumer: { type: "string" } }, strict: true, allowPositionals: false, tokens: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const repeated = repeatedFlag(tokens, ["from", "limit", "consumer"]);
  if (repeated) throw new UsageError(repeated);
  let limit = DEFAULT_LIST_LIMIT;
  if (values.limit !== undefined) {
    if (!/^[1-9][0-9]{0,5}$/.test(values.limit) || Number(values.limit) > MAX_LIST_LIMIT) {
      throw new UsageError(`--limit must be a whole number from 1 to ${MAX_LIST_LIMIT}, not "${values.limit}"`);
    }
    limit = Number(values.limit);
  }
  return { verb: "list", limit, ...(values.from === undefined ? {} : { from: parseSeq(values.from, "--from") }), ...consumerFlag(values.consumer) };
}

/** `replay --all` and `purge --all`, with an optional `--consumer <name>`. */
function parseAll(verb: "replay" | "purge", args: readonly string[]): { consumer?: string } {
  let values;
  let tokens;
  try {
    ({ values, tokens } = parseArgs({ args: [...args], options: { all: { type: "boolean" }, consumer: { type: "string" } }, strict: true, allowPositionals: false, tokens: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const repeated = repeatedFlag(tokens, ["all", "consumer"]);
  if (repeated) throw new UsageError(repeated);
  if (!values.all) throw new UsageError(`${verb} takes a dead-letter sequence number, or --all`);
  return consumerFlag(values.consumer);
}

/** `--consumer <name>`: a token of the letters' subject (dlq.<consumer>.<subject>), so no dots, spaces or wildcards. */
function consumerFlag(consumer: string | undefined): { consumer?: string } {
  if (consumer === undefined) return {};
  // A leading letter or digit: `--consumer --help` is a missing name, not a consumer called that.
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(consumer)) {
    throw new UsageError(`--consumer must be a consumer's name (letters, digits, '-' and '_', as dlq list shows it), not "${consumer}"`);
  }
  return { consumer };
}

const VERBS = new Set(["list", "show", "replay", "purge"]);

/** Parses argv after the program name; throws UsageError for anything it does not know. */
export function parseDlqArgs(argv: readonly string[]): DlqCommand {
  const [verb, arg] = argv;
  // `dlq list --help` asks for help, whatever else is on the line: it must not run the command
  // (or fail on the flag) instead.
  if (verb !== undefined && VERBS.has(verb) && argv.slice(1).some((a) => a === "--help" || a === "-h")) return { verb: "help" };
  const noMore = (n: number) => {
    if (argv.length > n) throw new UsageError(`unexpected argument "${argv[n]}"`);
  };
  switch (verb) {
    case "list":
      return parseList(argv.slice(1));
    case "show":
      noMore(2);
      return { verb, seq: parseSeq(arg, verb) };
    case "purge":
    case "replay":
      if (arg?.startsWith("--")) return { verb: verb === "purge" ? "purge-all" : "replay-all", ...parseAll(verb, argv.slice(1)) };
      noMore(2);
      return { verb, seq: parseSeq(arg, verb) };
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

const ofConsumer = (consumer: string | undefined) => (consumer === undefined ? "" : ` of ${consumer}`);

/** When a --consumer found nothing: a typo must not pass for an empty DLQ, so say whose letters there are. */
async function noLettersOf(consumer: string | undefined, deps: DlqDeps, io: Output) {
  if (consumer === undefined) return;
  const others = await deadLetterConsumers(deps);
  io.err(`dlq: no dead letter of "${consumer}"; ${others.length ? `the DLQ holds letters of ${others.join(", ")}` : "the DLQ is empty"}`);
}

/** Runs one parsed command against the DLQ; returns the process exit code. `signal` stops `replay --all` between letters. */
export async function runDlqCommand(cmd: DlqCommand, deps: DlqDeps, io: Output, signal?: AbortSignal): Promise<number> {
  try {
    switch (cmd.verb) {
      case "list": {
        const { letters, total, next } = await pageDeadLetters(deps, { limit: cmd.limit, from: cmd.from, consumer: cmd.consumer });
        io.out(formatDeadLetterTable(letters));
        if (letters.length === 0 && cmd.from === undefined) await noLettersOf(cmd.consumer, deps, io);
        const from = cmd.from === undefined ? "" : ` from seq ${cmd.from}`;
        io.out(`${letters.length} dead letter(s)${ofConsumer(cmd.consumer)} shown${from}; ${total} in ${deps.names.stream("DLQ")}`);
        const same = `${cmd.limit === DEFAULT_LIST_LIMIT ? "" : ` --limit ${cmd.limit}`}${cmd.consumer === undefined ? "" : ` --consumer ${cmd.consumer}`}`;
        if (next !== undefined) io.out(`more after these: dlq list --from ${next}${same}`);
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
        io.out(
          r.removedByOther
            ? `republished dead letter ${r.dlqSeq} to ${r.subject} (stream seq ${r.streamSeq}), but someone else replayed or purged it meanwhile: ${removedByOtherNote(r)}`
            : `replayed dead letter ${r.dlqSeq} to ${r.subject} as ${r.msgId} (stream seq ${r.streamSeq}); removed from the DLQ`,
        );
        return 0;
      }
      case "replay-all": {
        // Killed midway, a letter could be republished and not deleted (one more copy the next run
        // publishes again): a signal lets the letter in hand finish, then stops and says so.
        const stopping = () => io.err("dlq: stopping after the letter in hand (again to quit at once)");
        signal?.addEventListener("abort", stopping, { once: true });
        try {
          // Each line as it happens, so a run that stops midway has already said what it did.
          const { replayed, skipped, interrupted } = await replayAllDeadLetters(deps, {
            onReplayed: (r) => io.out(`replayed dead letter ${r.dlqSeq} to ${r.subject} as ${r.msgId}`),
            onSkipped: (s) => io.err(`dlq: skipped dead letter ${s.seq}: ${s.reason}`),
            signal,
            consumer: cmd.consumer,
          });
          io.out(`${replayed.length} dead letter(s)${ofConsumer(cmd.consumer)} replayed${skipped.length ? `, ${skipped.length} skipped` : ""}`);
          if (replayed.length + skipped.length === 0 && !interrupted) await noLettersOf(cmd.consumer, deps, io);
          if (interrupted) {
            io.err("dlq: interrupted; the dead letters not replayed are still in the DLQ (replay --all again to go on)");
            return 130;
          }
          return skipped.some((s) => !s.gone) ? 1 : 0;
        } finally {
          signal?.removeEventListener("abort", stopping);
        }
      }
      case "purge":
        await purgeDeadLetter(deps, cmd.seq);
        io.out(`purged dead letter ${cmd.seq}`);
        return 0;
      case "purge-all": {
        const purged = await purgeAllDeadLetters(deps, { consumer: cmd.consumer });
        io.out(`purged ${purged} dead letter(s)${ofConsumer(cmd.consumer)}`);
        if (purged === 0) await noLettersOf(cmd.consumer, deps, io);
        return 0;
      }
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

const cliConfigSchema = baseConfigSchema.pick(NATS_CLIENT_VARIABLES);

const STOPPED = Symbol("stopped");

/** `work`'s outcome, or STOPPED as soon as `signal` aborts (the work is abandoned, not awaited). */
async function unlessStopped<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof STOPPED> {
  if (!signal) return work;
  if (signal.aborted) return STOPPED;
  let onAbort = () => {};
  const stopped = new Promise<typeof STOPPED>((resolve) => signal.addEventListener("abort", (onAbort = () => resolve(STOPPED)), { once: true }));
  try {
    return await Promise.race([work, stopped]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * The whole command: argv and env in, exit code out. A CLI fails fast instead of reconnecting
 * forever, so it connects once with a timeout. `signal` (Ctrl-C) stops `replay --all` after the
 * letter in hand; anything else has nothing to finish and stops at once. Either way: exit 130.
 * @example await main(["list"], process.env, console)
 */
export async function main(argv: readonly string[], env: Record<string, string | undefined>, io: Output, { signal }: { signal?: AbortSignal } = {}): Promise<number> {
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
  const interrupted = () => {
    io.err("dlq: interrupted");
    return 130;
  };
  let nc: NatsConnection | typeof STOPPED;
  const connecting = connect({
    ...natsClientOptions(config),
    name: "orderflow-dlq",
    timeout: 5000,
    noAsyncTraces: true,
  });
  try {
    nc = await unlessStopped(connecting, signal);
  } catch (err) {
    if (signal?.aborted) return interrupted();
    const { cause } = await timeoutCause(err, config, signal);
    if (signal?.aborted) return interrupted();
    io.err(`dlq: cannot connect to NATS at ${redactUrl(config.NATS_URL)}: ${(err as Error).message}${cause ? ` (${cause})` : ""}`);
    return 1;
  }
  if (nc === STOPPED) {
    void connecting.then((c) => c.close(), () => {});
    return interrupted();
  }
  try {
    const jsm = await unlessStopped(jetstreamManager(nc), signal);
    if (jsm === STOPPED) return interrupted();
    const deps: DlqDeps = { js: jetstream(nc), jsm, names: createNames(config.NATS_NAMESPACE) };
    if (cmd.verb === "replay-all") return await runDlqCommand(cmd, deps, io, signal);
    const code = await unlessStopped(runDlqCommand(cmd, deps, io), signal);
    return code === STOPPED ? interrupted() : code;
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
  // Ctrl-C or SIGTERM: the first stops the command (see main), a second exits at once.
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => (stop.signal.aborted ? process.exit(130) : stop.abort(signal));
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  // Exits rather than waiting for the event loop to empty: a connect that timed out against
  // something that is not NATS leaves nats.js's socket open, which held the command for ever.
  // (Writes to a pipe, a file or a terminal are synchronous here, so nothing printed is lost.)
  main(process.argv.slice(2), process.env, io, { signal: stop.signal }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`dlq: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
