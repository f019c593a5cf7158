import { parseArgs } from "node:util";

export interface ReplayArgs {
  service?: string;
  fromSeq?: number;
  fromTime?: Date;
  dryRun: boolean;
  force: boolean;
}

/** Bad command-line input; the CLI prints it with the usage and exits 2. */
export class ReplayUsageError extends Error {
  override name = "ReplayUsageError";
}

export const replayUsage =
  "usage: npm run replay -- --service <service> [--from-seq N | --from-time T] [--dry-run] [--force]\n" +
  "  without --from-*: full rebuild (the projection and its inbox rows are reset in one transaction, then every event is re-applied)\n" +
  "  --from-seq N     re-apply from stream sequence N (per stream) through the inbox; nothing is reset\n" +
  "  --from-time T    re-apply events stored at or after T (ISO 8601)\n" +
  "  --dry-run        read and count only; write nothing\n" +
  "  --force          a full rebuild even when the streams no longer hold all of history (what only they held is lost)";

/**
 * Parses `--service`, `--from-seq`, `--from-time` and `--dry-run`; rejects anything else.
 * @example parseReplayArgs(["--from-seq", "10", "--dry-run"]) // { fromSeq: 10, dryRun: true }
 */
export function parseReplayArgs(argv: string[]): ReplayArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        service: { type: "string" },
        "from-seq": { type: "string" },
        "from-time": { type: "string" },
        "dry-run": { type: "boolean", default: false },
        force: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ReplayUsageError((err as Error).message);
  }
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
    const raw = values["from-time"];
    const t = new Date(raw);
    // Date takes 2026-11-31 (as December 1st): the text must be a date (optionally a time and
    // zone) whose day exists.
    const shape = /^(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(raw);
    const day = shape && new Date(Date.UTC(Number(shape[1]), Number(shape[2]) - 1, Number(shape[3])));
    const dayExists = day !== null && day.getUTCMonth() === Number(shape![2]) - 1 && day.getUTCDate() === Number(shape![3]);
    if (!dayExists || Number.isNaN(t.getTime())) throw new ReplayUsageError("--from-time must be an ISO 8601 time, e.g. 2026-01-02T03:04:05Z");
    args.fromTime = t;
  }
  return args;
}
