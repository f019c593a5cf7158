import type { Logger } from "pino";
import { reportableError } from "../db/errors.js";

export interface ShutdownOptions {
  log: Logger;
  timeoutMs: number;
  /** Steps run in order; a failing step is logged and the next one still runs. */
  steps: { name: string; run: () => Promise<void> | void }[];
  exit?: (code: number) => void;
}

/**
 * Wires SIGTERM/SIGINT to an orderly stop: exit 0 when every step finished in time, exit 1 if
 * the deadline passes first (whatever was not acked is redelivered, so nothing is lost).
 * Returns the trigger so callers and tests can start a shutdown themselves.
 */
export function installShutdown({ log, timeoutMs, steps, exit = (c) => process.exit(c) }: ShutdownOptions): (reason: string, exitCode?: number) => Promise<void> {
  let started: Promise<void> | undefined;
  const shutdown = (reason: string, exitCode = 0) =>
    (started ??= (async () => {
      log.info({ reason, timeoutMs }, "shutting down");
      const deadline = setTimeout(() => {
        log.error({ timeoutMs }, "shutdown timed out; exiting");
        exit(1);
      }, timeoutMs);
      deadline.unref();
      for (const step of steps) {
        try {
          await step.run();
        } catch (err) {
          log.warn({ step: step.name, err: reportableError(err).message }, "shutdown step failed");
        }
      }
      clearTimeout(deadline);
      log.info("shutdown complete");
      exit(exitCode);
    })());
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
  return shutdown;
}
