import { parseArgs } from "node:util";

export interface ReplayArgs {
  service?: string;
  fromSeq?: number;
  fromTime?: Date;
  dryRun: boolean;
}

/** Bad command-line input; the CLI prints it with the usage and exits 2. */
export class ReplayUsageError extends Error {
  override name = "ReplayUsageError";
}

export const replayUsage =
  "usage: npm run replay -- --service order-service|user-service|event-log [--from-seq N | --from-time T] [--dry-run]\n" +
  "  without --from-*: full rebuild (the projection and its inbox rows are reset in one transaction, then every event is re-applied)\n" +
  "  --from-seq N     re-apply from stream sequence N (per stream) through the inbox; nothing is reset\n" +
  "  --from-time T    re-apply events stored at or after T (ISO 8601)\n" +
  "  --dry-run        read and count only; write nothing";

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
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ReplayUsageError((err as Error).message);
  }
  const args: ReplayArgs = { dryRun: values["dry-run"] ?? false };
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
    const t = new Date(values["from-time"]);
    if (!/^\d{4}-\d{2}-\d{2}/.test(values["from-time"]) || Number.isNaN(t.getTime())) throw new ReplayUsageError("--from-time must be an ISO 8601 time, e.g. 2026-01-02T03:04:05Z");
    args.fromTime = t;
  }
  return args;
}
