import { parseArgs } from "node:util";
import { repeatedFlag } from "../cli/flags.js";

export interface ReplayArgs {
  service?: string;
  fromSeq?: number;
  fromTime?: Date;
  dryRun: boolean;
  force: boolean;
  /** `--help`/`-h`: print the usage and exit 0, whatever else was given. */
  help?: true;
}

/** Bad command-line input; the CLI prints it with the usage and exits 2. */
export class ReplayUsageError extends Error {
  override name = "ReplayUsageError";
}

export const replayUsage =
  "usage: npm run replay -- --service <service> [--from-seq N | --from-time T] [--dry-run] [--force]\n" +
  "  without --from-*: full rebuild (the projection and its inbox rows are reset in one transaction, then every event is re-applied)\n" +
  "  --from-seq N     re-apply from stream sequence N (per stream) through the inbox; nothing is reset\n" +
  "  --from-time T    re-apply events stored at or after T (RFC 3339 with a zone, or a date: midnight UTC)\n" +
  "  --dry-run        read and count only; write nothing\n" +
  "  --force          a full rebuild even when the streams no longer hold all of history (what only they held is lost)\n" +
  "  -h, --help       this text\n" +
  "exit codes: 0 done; 1 failed (nothing or only part replayed, the message says which); 2 bad usage or configuration;\n" +
  "  3 finished, but some events could not be applied (or, in a dry run, would fail): those the live consumer dead-letters;\n" +
  "  130 interrupted (Ctrl-C or SIGTERM)";

/**
 * Parses `--service`, `--from-seq`, `--from-time`, `--dry-run`, `--force` and `--help`; rejects
 * anything else, and a value flag given twice.
 * @example parseReplayArgs(["--from-seq", "10", "--dry-run"]) // { fromSeq: 10, dryRun: true }
 */
export function parseReplayArgs(argv: string[]): ReplayArgs {
  let values;
  let tokens;
  try {
    ({ values, tokens } = parseArgs({
      args: argv,
      options: {
        service: { type: "string" },
        "from-seq": { type: "string" },
        "from-time": { type: "string" },
        "dry-run": { type: "boolean", default: false },
        force: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
      tokens: true,
    }));
  } catch (err) {
    throw new ReplayUsageError((err as Error).message);
  }
  if (values.help) return { dryRun: false, force: false, help: true };
  const repeated = repeatedFlag(tokens, ["service", "from-seq", "from-time"]);
  if (repeated) throw new ReplayUsageError(repeated);
  const args: ReplayArgs = { dryRun: values["dry-run"] ?? false, force: values.force ?? false };
  if (args.force && (values["from-seq"] !== undefined || values["from-time"] !== undefined)) throw new ReplayUsageError("--force is for a full rebuild; --from-seq and --from-time reset nothing");
  if (values.service !== undefined) args.service = values.service;
  if (values["from-seq"] !== undefined && values["from-time"] !== undefined) {
    throw new ReplayUsageError("--from-seq and --from-time exclude each other");
  }
  if (values["from-seq"] !== undefined) {
    const n = Number(values["from-seq"]);
    if (!/^\d+$/.test(values["from-seq"]) || !Number.isSafeInteger(n) || n < 1) throw new ReplayUsageError("--from-seq must be a whole number ≥ 1");
    args.fromSeq = n;
  }
  if (values["from-time"] !== undefined) {
    // RFC 3339 lets the "T" and "Z" be lower case, as the event log's `from` takes them.
    const raw = values["from-time"].toUpperCase();
    const t = new Date(raw);
    // Date takes 2026-11-31 (as December 1st): the text must be a date (optionally a time and
    // zone) whose day exists.
    const shape = /^(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(raw);
    const day = shape && new Date(Date.UTC(Number(shape[1]), Number(shape[2]) - 1, Number(shape[3])));
    const dayExists = day !== null && day.getUTCMonth() === Number(shape![2]) - 1 && day.getUTCDate() === Number(shape![3]);
    if (!dayExists || Number.isNaN(t.getTime())) throw new ReplayUsageError("--from-time must be an RFC 3339 time with a zone, e.g. 2026-01-02T03:04:05Z, or a date");
    // A time without a zone is read in this machine's zone by Date: the same command would replay
    // from another moment on another machine.
    if (shape![4] !== undefined && shape![7] === undefined) throw new ReplayUsageError(`--from-time needs a zone after its time (Z, or ±hh:mm): ${values["from-time"]}Z is UTC`);
    args.fromTime = t;
  }
  return args;
}
