/**
 * `p`, or a rejection with `message` once `ms` have passed: for waits that could otherwise last
 * for ever (a query on a silent connection, a driver reconnecting without end).
 */
export function within<T>(p: Promise<T>, ms: number, message = `no answer within ${ms} ms`): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms);
    p.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}
