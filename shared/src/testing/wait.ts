/**
 * Polls `probe` until it returns a value that is not undefined/false, or fails after
 * `timeoutMs` with the last error. Tests await conditions with it instead of sleeping.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  {
    timeoutMs = 20_000,
    intervalMs = 50,
    what = "condition",
    abortIf,
  }: {
    timeoutMs?: number;
    intervalMs?: number;
    what?: string;
    /** Checked before each probe: a returned message fails the wait at once (e.g. the process died). */
    abortIf?: () => string | undefined;
  } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const fatal = abortIf?.();
    if (fatal) throw new Error(`gave up waiting for ${what}: ${fatal}`);
    try {
      // A probe that hangs (a request nobody answers) must not outlive the deadline.
      let timer: NodeJS.Timeout | undefined;
      const overdue = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("the probe did not answer in time")), Math.max(deadline - Date.now(), intervalMs));
      });
      const value = await Promise.race([Promise.resolve().then(probe), overdue]).finally(() => clearTimeout(timer));
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
