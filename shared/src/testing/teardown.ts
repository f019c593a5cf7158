/**
 * Runs every clean-up step in order, each one even if a step before it failed, then fails with
 * what went wrong: a database left behind because closing a connection threw is a leak the next
 * run trips over.
 */
export async function teardown(...steps: (() => unknown)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} clean-up steps failed`);
}
