import { pino, type Logger, type LevelWithSilent } from "pino";
import { reportableError } from "../db/errors.js";

export type { Logger } from "pino";

export interface LoggerOptions {
  service: string;
  level?: LevelWithSilent;
  instance?: string;
  /** Where to write; tests pass a stream to capture lines. Defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

/**
 * One JSON line per record, with `service` and `instance` on every line. An error logged as
 * `err` goes through reportableError first: pino's own serializer follows `cause` chains, and a
 * database error's chain holds the SQL and its parameters (user data).
 */
export function createLogger({ service, level = "info", instance, destination }: LoggerOptions): Logger {
  const base = { service, ...(instance ? { instance } : {}) };
  const options = { level, base, timestamp: pino.stdTimeFunctions.isoTime, serializers: { err: serializeError } };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}

/** Fields of an error that say what failed (a socket's, a resolver's), kept; never its cause. */
const DETAIL_FIELDS = ["code", "errno", "syscall", "address", "port", "hostname"] as const;

function serializeError(e: unknown) {
  if (!(e instanceof Error)) return e;
  const reported = reportableError(e);
  // pino names the type by constructor, which is a plain Error here: the reported name says more.
  const out: Record<string, unknown> = { ...pino.stdSerializers.err(reported), type: reported.name };
  const own = e as unknown as Record<string, unknown>;
  for (const k of DETAIL_FIELDS) if (own[k] !== undefined) out[k] = own[k];
  // Node's dual-stack connect failure is an AggregateError with no message of its own.
  if (!e.message && e instanceof AggregateError) out.message = e.errors.map((x: unknown) => (x as Error)?.message).join("; ");
  return out;
}
