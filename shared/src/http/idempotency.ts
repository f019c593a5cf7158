import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { eq, lt, sql } from "drizzle-orm";
import type { Context } from "hono";
import type { Db, Tx } from "../db/database.js";
import { idempotencyKeys } from "../db/tables.js";
import { transactionWithQueued, type OutboxMessage } from "../outbox/handoff.js";
import { HttpProblemError, UnprocessableError } from "../errors/index.js";

export const IDEMPOTENCY_KEY_HEADER = "Idempotency-Key";
/** 1–255 printable ASCII characters: what readIdempotencyKey takes and the OpenAPI document states. */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

/** The stored outcome of a write, replayed verbatim for a retry with the same key. */
export interface WriteResponse<B = unknown> {
  status: 200 | 201;
  body: B;
  headers: Record<string, string>;
}

/**
 * Reads the Idempotency-Key header: absent → undefined; present but not 1–255 printable
 * ASCII characters, or repeated → a 400 problem.
 */
export function readIdempotencyKey(c: Context): string | undefined {
  const key = c.req.header(IDEMPOTENCY_KEY_HEADER);
  if (key === undefined) return undefined;
  // Node joins repeated lines of a header it does not know into one value, "a, b": a key that
  // neither request sent. Refused, where the raw lines are known (behind the Node server).
  const incoming = (c.env as { incoming?: Partial<IncomingMessage> } | undefined)?.incoming;
  if ((incoming?.headersDistinct?.["idempotency-key"]?.length ?? 0) > 1) {
    throw new HttpProblemError(400, "Bad Request", "send one Idempotency-Key header, not several", {
      errors: [{ in: "header", pointer: `/${IDEMPOTENCY_KEY_HEADER}`, detail: "is repeated" }],
    });
  }
  if (!IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new HttpProblemError(400, "Bad Request", "Idempotency-Key must be 1–255 printable ASCII characters", {
      errors: [{ in: "header", pointer: `/${IDEMPOTENCY_KEY_HEADER}`, detail: "must be 1–255 printable ASCII characters" }],
    });
  }
  return key;
}

/**
 * Runs `write` in a transaction, guarded by an idempotency key when the client sent one.
 *
 * The key row is claimed first, inside the write's transaction: a concurrent request with the
 * same key blocks on that row until the first commits, then replays its response, so two
 * requests never both write. Same key with a different body → 422. A write that fails (a 409,
 * say) rolls the claim back with it, so the key stays free for a corrected retry.
 */
export async function idempotentWrite<B>(
  db: Db,
  opts: { scope: string; key: string | undefined; request: unknown },
  write: (tx: Tx) => Promise<WriteResponse<B>>,
): Promise<WriteResponse<B> & { replayed: boolean; queued: OutboxMessage[] }> {
  // The transaction's outbox messages come back with the response, for the relay.
  const { result, queued } = await transactionWithQueued(db, (tx) => writeOnce(tx, opts, write));
  return { ...result, queued };
}

async function writeOnce<B>(
  tx: Tx,
  opts: { scope: string; key: string | undefined; request: unknown },
  write: (tx: Tx) => Promise<WriteResponse<B>>,
): Promise<WriteResponse<B> & { replayed: boolean }> {
  if (opts.key === undefined) return { ...(await write(tx)), replayed: false };
  const key = `${opts.scope}:${opts.key}`;
  const requestHash = createHash("sha256").update(JSON.stringify(opts.request)).digest("base64url");
  const claimed = await tx
    .insert(idempotencyKeys)
    .values({ key, requestHash, status: 0, responseBody: "" })
    .onConflictDoNothing()
    .returning({ key: idempotencyKeys.key });
  if (claimed.length === 0) {
    const [stored] = await tx.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key));
    if (!stored) throw new Error(`idempotency key ${key} vanished while being read`);
    if (stored.requestHash !== requestHash) {
      throw new UnprocessableError("this Idempotency-Key was already used with a different request body", {
        errors: [{ in: "header", pointer: `/${IDEMPOTENCY_KEY_HEADER}`, detail: "reused with a different request body" }],
      });
    }
    return {
      status: stored.status as 200 | 201,
      body: JSON.parse(stored.responseBody) as B,
      headers: { ...stored.responseHeaders, "idempotent-replayed": "true" },
      replayed: true,
    };
  }
  const response = await write(tx);
  await tx
    .update(idempotencyKeys)
    .set({ status: response.status, responseBody: JSON.stringify(response.body), responseHeaders: response.headers })
    .where(eq(idempotencyKeys.key, key));
  return { ...response, replayed: false };
}

/** Deletes keys older than `ttlMs`; keys therefore live at least that long. */
export async function purgeIdempotencyKeys(db: Db, ttlMs: number): Promise<void> {
  // The database's clock, which set created_at: an app clock ahead by X would cut every key's
  // life to the TTL minus X, and a retry inside the promised TTL would get a 409, not a replay.
  await db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, sql`now() - ${ttlMs}::int * interval '1 millisecond'`));
}
