import type { Executor } from "./database.js";

interface PostgresJsClient {
  unsafe(text: string, params: unknown[], options: { prepare: boolean }): PromiseLike<unknown[]>;
}
interface PgliteClient {
  query(text: string, params: unknown[]): Promise<{ rows: unknown[] }>;
}

/**
 * Runs a hot-path statement as a prepared statement on the executor's own connection (the
 * transaction's, inside one), and returns its rows with the column names as selected.
 *
 * drizzle sends every query unnamed, and postgres.js then asks the server for the parameter
 * types before binding: two round trips plus a fresh parse and plan per query. Prepared, a
 * statement costs one round trip after its first use on a connection. That only pays when the
 * text is fixed, so batch statements take their rows as one JSON parameter
 * (`json_to_recordset($1::text::json)`) instead of a VALUES list that changes with the batch size.
 */
export async function prepared<Row>(ex: Executor, text: string, params: readonly unknown[]): Promise<Row[]> {
  // drizzle keeps the driver's client (the transaction's, inside one) on its session.
  const client = (ex._.session as unknown as { client: PostgresJsClient | PgliteClient }).client;
  if ("unsafe" in client) return (await client.unsafe(text, [...params], { prepare: true })) as Row[];
  return (await client.query(text, [...params])).rows as Row[];
}

/**
 * The JSON parameter for `json_to_recordset`: each row's `n` is its position, so statements can
 * keep the caller's order (`order by n`) where it matters, e.g. for outbox sequence numbers.
 */
export const jsonRows = (rows: readonly object[]): string => JSON.stringify(rows.map((row, n) => ({ ...row, n })));
