import type { Logger } from "pino";
import { abortableDelay, backoffMs } from "./delay.js";
import { reportableError } from "../db/errors.js";

/**
 * Runs `fn` until it succeeds or `signal` aborts, with capped exponential backoff. Used for
 * start-up steps (migrations, stream setup) so a service waits for its dependencies instead of
 * crash-looping.
 */
export async function retryUntilDone<T>(what: string, fn: () => Promise<T>, log: Logger, signal?: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (attempt === 1 || attempt % 10 === 0) log.warn({ err: reportableError(err).message, attempt }, `${what} failed; retrying`);
      await abortableDelay(backoffMs(attempt, 200), signal);
    }
  }
}
