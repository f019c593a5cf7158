/** Walks `cause` chains: drizzle wraps driver errors in DrizzleQueryError. */
function* causes(err: unknown): Generator<Record<string, unknown>> {
  let current: unknown = err;
  for (let depth = 0; current && typeof current === "object" && depth < 5; depth++) {
    yield current as Record<string, unknown>;
    current = (current as { cause?: unknown }).cause;
  }
}

export function pgErrorCode(err: unknown): string | undefined {
  for (const e of causes(err)) if (typeof e.code === "string") return e.code;
  return undefined;
}

/** A unique constraint was violated; `constraint` narrows it to one index. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  for (const e of causes(err)) {
    if (e.code === "23505") return constraint === undefined || e.constraint_name === constraint || e.constraint === constraint;
  }
  return false;
}

// Contention and timeouts; the unreachable database's codes are below. DNS failures count as
// unreachable (ENOTFOUND, EAI_AGAIN): a database's name that stops resolving for a while (a
// Service being recreated, a resolver restart) is an outage, not a bug.
const transientCodes = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "55P03", // lock_not_available
  "57014", // query_canceled (statement timeout)
]);

/** Connection loss, refusal, timeouts and contention: worth retrying later. */
/** Postgres says a table or column does not exist (undefined_table, undefined_column). */
export function isMissingRelation(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code === "42P01" || code === "42703";
}

export function isTransientDbError(err: unknown): boolean {
  if (isDatabaseUnreachable(err)) return true;
  for (const e of causes(err)) if (typeof e.code === "string" && transientCodes.has(e.code)) return true;
  return false;
}

// The server is not there to ask, or not taking writes: nothing about the statement or its data
// is at fault. too_many_connections, not accepting connections, admin/crash shutdown, cannot
// connect now; read_only_sql_transaction (a failover left us on a standby, or a managed service
// went read-only as its storage filled), disk_full, out_of_memory, io_error.
const unreachableCodes = new Set(["53300", "55000", "57P01", "57P02", "57P03", "25006", "53100", "53200", "58030"]);

/**
 * The database could not be reached or is not taking work (connection refused or lost, DNS,
 * shutting down or starting up, no free connection, read-only, out of disk): a subset of the transient errors, the one
 * that says nothing about the statement. Deadlocks, serialization failures and statement
 * timeouts are transient but belong to the work itself.
 */
export function isDatabaseUnreachable(err: unknown): boolean {
  for (const e of causes(err)) {
    const code = e.code;
    if (typeof code !== "string") continue;
    if (unreachableCodes.has(code) || code.startsWith("08")) return true;
    if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|CONNECTION_|CONNECT_TIMEOUT)/.test(code)) return true;
  }
  return false;
}

// Refusals that depend only on the values written: the same data fails the same way every time.
// Unique and foreign-key violations are left out: another writer or a later event can change
// their outcome (a retry then finds the row, or its parent).
// 54000 is a value over a built-in limit (an index entry over 2,704 bytes, say).
const permanentCodes = new Set(["23502", "23514", "23P01", "54000"]); // not null, check, exclusion, program limit

/** The database refused the data itself (SQLSTATE class 22 "data exception", or a value constraint). */
export function isPermanentDbError(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code !== undefined && (code.startsWith("22") || permanentCodes.has(code));
}

/**
 * The error worth reporting in logs and dead-letter headers. Drizzle wraps driver errors in a
 * DrizzleQueryError named plain "Error" whose message is the SQL text and its parameters —
 * user data such as emails, and not the reason. Report the driver's error instead, with its
 * SQLSTATE. The result never carries a `cause`: pino's serializer appends a cause chain's
 * messages and stacks to the logged one, which would bring the SQL and its parameters back.
 */
export function reportableError(err: unknown): Error {
  const error = err instanceof Error ? err : new Error(String(err));
  const cause = (error as { cause?: unknown }).cause;
  if (error.message.startsWith("Failed query") && cause instanceof Error) {
    const code = pgErrorCode(cause);
    return withoutCause(cause.name === "Error" ? "DatabaseError" : cause.name, code ? `${code}: ${cause.message}` : cause.message, cause);
  }
  // A driver error from a statement sent without drizzle: its SQLSTATE in front, as above.
  const own = (error as { code?: unknown }).code;
  const coded = typeof own === "string" && /^[0-9A-Z]{5}$/.test(own) && !error.message.startsWith(own);
  return withoutCause(error.name, coded ? `${own}: ${error.message}` : error.message, error);
}

/** A new error with this name and message and the frames (not the text) of `from`'s stack. */
function withoutCause(name: string, message: string, from: Error): Error {
  const reported = new Error(message);
  reported.name = name;
  const frames = from.stack?.split("\n").filter((l) => l.trimStart().startsWith("at ")) ?? [];
  reported.stack = [`${name}: ${message}`, ...frames].join("\n");
  return reported;
}
