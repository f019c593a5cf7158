import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger } from "pino";

export interface LoggerOptions {
  service: string;
  level?: LevelWithSilent;
  instance?: string;
  /** Where to write; tests pass a stream to capture lines. Defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

/** One JSON line per record, with `service` and `instance` on every line. */
export function createLogger({ service, level = "info", instance, destination }: LoggerOptions): Logger {
  const base = { service, ...(instance ? { instance } : {}) };
  const options = { level, base, timestamp: pino.stdTimeFunctions.isoTime };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
