/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The wait before retry number `attempt` (1, 2, …): `baseMs` doubled each time, capped at `maxMs`
 * so a dependency that comes back is noticed within seconds.
 */
export const backoffMs = (attempt: number, baseMs: number, maxMs = 5000): number => Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
