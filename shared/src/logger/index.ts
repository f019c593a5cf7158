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
  const err = (e: unknown) => (e instanceof Error ? pino.stdSerializers.err(reportableError(e)) : e);
  const options = { level, base, timestamp: pino.stdTimeFunctions.isoTime, serializers: { err } };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
