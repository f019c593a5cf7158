import { accessSync, constants, readFileSync } from "node:fs";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { credsAuthenticator } from "@nats-io/nats-core";
import { z } from "zod";
import { DEFAULT_HEAP_GROWING_PERCENT } from "../lifecycle/node-options.js";
import { postgresTlsFiles, postgresTlsProblem } from "../db/tls.js";

/** Thrown when the environment does not satisfy a config schema; `message` names every bad variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(
    message: string,
    readonly issues: readonly { variable: string; problem: string }[],
  ) {
    super(message);
  }
}

const booleanFromEnv = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

const databaseUrl = z
  .string({ error: "is required (postgres://… or pglite://<dir>)" })
  .refine((v) => /^(postgres|postgresql|pglite):\/\//.test(v), {
    message: "must start with postgres://, postgresql:// or pglite://",
  })
  // Neither URL nor the driver takes one (…%25eth0): said, rather than "must name a host".
  .refine((v) => !/^postgres(ql)?:\/\/(?:[^@/?#]*@)?[^/?#]*\[[^\]]*%/.test(v), { message: "has an IPv6 address with a zone (%25…), which cannot be dialled: use a global address or a host name", abort: true })
  // postgres:// alone would connect to whatever PGHOST/PGDATABASE or the OS user name imply.
  .refine((v) => !/^postgres(ql)?:/.test(v) || postgresUrlNames(v), { message: "must name a host and a database (postgres://user@host:5432/db)", abort: true })
  // The driver decodes them at connect and threw a URIError with a stack trace instead.
  .refine((v) => !/^postgres(ql)?:/.test(v) || postgresUrlDecodes(v), { message: "has a malformed percent-escape in its user, password or host: write a literal % as %25" })
  // postgres.js treats any other value as verify-full, so a typo failed every connect with a TLS error.
  .refine((v) => !/^postgres(ql)?:/.test(v) || sslModeKnown(v), { message: "has an unknown sslmode: use disable, allow, prefer, require, verify-ca or verify-full" })
  // `pglite://$DATA_DIR` with the variable unset was an in-memory database, lost at every restart.
  .refine((v) => v !== "pglite://", { message: "pglite:// needs a directory (pglite://<dir>), or pglite://memory for a throwaway database" })
  // libpq's TLS files, which openDatabase hands to the driver: said at start, not as a TLS error retried for ever.
  .superRefine((v, ctx) => {
    if (!/^postgres(ql)?:/.test(v)) return;
    const problem = postgresTlsProblem(v);
    if (problem) return void ctx.addIssue({ code: "custom", message: problem });
    const { sslrootcert, sslcert, sslkey } = postgresTlsFiles(v);
    const bad = (parameter: string, what: string) => ctx.addIssue({ code: "custom", message: `has ${parameter}, which is not a readable file holding ${what}` });
    if (sslrootcert !== undefined && !certificate(sslrootcert)) bad("sslrootcert", "a PEM certificate");
    if (sslcert !== undefined && !certificate(sslcert)) bad("sslcert", "a PEM certificate");
    if (sslkey !== undefined && !privateKey(sslkey)) bad("sslkey", "an unencrypted PEM private key");
    else if (sslcert !== undefined && sslkey !== undefined && certificate(sslcert) && !keyOfCertificate(sslcert, sslkey)) {
      ctx.addIssue({ code: "custom", message: "has an sslkey that is not the private key of its sslcert" });
    }
  });

function postgresUrlNames(v: string): boolean {
  try {
    // postgres.js takes several hosts (postgres://u@db1:5432,db2:5432/db), which URL does not.
    const u = new URL(v.replace(/^(postgres(?:ql)?:\/\/(?:[^@/?#]*@)?)([^,/?#]*)(?:,[^/?#]*)?/, "$1$2"));
    return u.hostname !== "" && u.pathname.length > 1;
  } catch {
    return false;
  }
}

const SSL_MODES = new Set(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]);

function sslModeKnown(v: string): boolean {
  const query = v.indexOf("?");
  if (query < 0) return true;
  const modes = new URLSearchParams(v.slice(query + 1)).getAll("sslmode");
  return modes.every((m) => SSL_MODES.has(m));
}

function postgresUrlDecodes(v: string): boolean {
  try {
    const authority = v.replace(/^postgres(?:ql)?:\/\//, "").split(/[?/]/)[0]!;
    const at = authority.lastIndexOf("@");
    decodeURIComponent(authority.slice(at + 1));
    if (at >= 0) for (const part of authority.slice(0, at).split(":")) decodeURIComponent(part);
    return true;
  } catch {
    return false;
  }
}

function credentials(path: string): boolean {
  try {
    // What nats.js does with the file at connect: parse it, and sign the server's nonce with the seed.
    credsAuthenticator(readFileSync(path))("nonce");
    return true;
  } catch {
    return false;
  }
}

/**
 * A certificate in PEM (the first of a bundle is parsed). PEM only: X509Certificate reads DER
 * too, but Node's TLS ignores a DER CA and the handshake then fails as "unable to verify".
 */
function certificate(path: string): X509Certificate | undefined {
  try {
    const pem = readFileSync(path);
    return pem.includes("-----BEGIN CERTIFICATE-----") ? new X509Certificate(pem) : undefined;
  } catch {
    return undefined;
  }
}

function privateKey(path: string) {
  try {
    return createPrivateKey(readFileSync(path));
  } catch {
    return undefined;
  }
}

/** Whether the key is the certificate's (both files already checked to parse): a mismatched pair fails only in the handshake. */
const keyOfCertificate = (certPath: string, keyPath: string): boolean => certificate(certPath)!.checkPrivateKey(privateKey(keyPath)!);

/** A readable file that parses as `what`: said at start, not as a TLS failure retried for ever. */
const pemFile = (parses: (path: string) => unknown, what: string) =>
  z
    .string()
    .refine(readable, { message: `must be a readable file (${what})`, abort: true })
    .refine((path) => parses(path) !== undefined, { message: `is not ${what}` });

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A whole number from the environment, in decimal digits only (z.coerce.number takes `0x9e`
 * and `1e3`, and an all-blank value as 0).
 */
export const envInt = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, "must be a whole number in decimal digits")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/**
 * A stream's max_age: 0 keeps messages for ever; otherwise at least the 2-minute duplicate window
 * (JetStream refuses a stream whose max_age is shorter) and at most what its nanoseconds can hold.
 */
const streamMaxAgeMs = () =>
  envInt(0, 9_000_000_000_000).refine((v) => v === 0 || v >= 120_000, {
    message: "must be 0 (no limit) or at least 120000 (the 2-minute duplicate window)",
  });

/** Node's timers and Postgres's timeouts take at most 2^31 - 1 ms (24.8 days); beyond, Node fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;
const durationMs = (fallback: number, min = 0) => envInt(min, MAX_TIMER_MS).default(fallback);

/**
 * nats:// or tls:// URLs (or host:port), comma-separated. Not ws:// or wss://: the Node client
 * speaks NATS over TCP only, and would fail to connect (or retry for ever) on them.
 */
const natsUrl = z
  .string()
  .refine(
    (v) =>
      v.split(",").every((part) => {
        const p = part.trim();
        try {
          const u = new URL(/^[a-z]+:\/\//i.test(p) ? p : `nats://${p}`);
          return ["nats:", "tls:"].includes(u.protocol) && u.hostname !== "";
        } catch {
          return false;
        }
      }),
    { message: "must be nats://host:port or tls://host:port (or host:port), comma-separated for several servers; ws:// and wss:// are not supported (the Node client speaks NATS over TCP)" },
  );

/**
 * Settings every service reads. Services extend it with `.extend({...})`.
 * @example const config = loadConfig(baseConfigSchema, process.env)
 */
export const baseConfigSchema = z.object({
  PORT: envInt(1, 65535).default(3000),
  HOST: z.string().default("0.0.0.0"),
  /** Prometheus metrics (GET /metrics) on a port of their own; 0 (the default) serves none. */
  METRICS_PORT: envInt(0, 65535).default(0),
  DATABASE_URL: databaseUrl,
  DATABASE_POOL_SIZE: envInt(1, 100).default(8),
  /** Longest a service's statement may run, lock waits included (0: no limit); see DatabaseOptions. */
  // Below 100 ms the driver's own catalog query on each new connection can be cancelled, and
  // postgres.js leaves that rejection unhandled: the process died with it.
  DATABASE_STATEMENT_TIMEOUT_MS: durationMs(30_000).refine((v) => v === 0 || v >= 100, { message: "must be 0 (no limit) or at least 100" }),
  // An HTTP request not answered in this time gets a 503 (the database frozen or unreachable
  // without a reset): far above a healthy request (p99 tens of ms), below a client's patience.
  // 0: no deadline.
  REQUEST_DEADLINE_MS: durationMs(15_000),
  NATS_URL: natsUrl.default("nats://127.0.0.1:4222"),
  NATS_USER: z.string().optional(),
  NATS_PASSWORD: z.string().optional(),
  NATS_TOKEN: z.string().optional(),
  /** A credentials file (user JWT and seed, as nsc writes it) for NATS decentralized auth. */
  NATS_CREDS_FILE: z
    .string()
    .refine(readable, { message: "must be a readable credentials file", abort: true })
    // Read only at connect, where a file that does not parse was retried for ever as "nats not
    // reachable yet".
    .refine(credentials, { message: "is not a NATS credentials file (a user JWT and an nkey seed, as nsc writes it)" })
    .optional(),
  /**
   * TLS to NATS with a private CA and client certificates (servers with `verify: true`). Any of
   * them makes the client require TLS of every server, as a tls:// URL does. nats.js reads the
   * files at every connect and reconnect, so a renewed certificate is used from the next one.
   */
  NATS_TLS_CA_FILE: pemFile(certificate, "a PEM certificate of the CA that signed the servers' certificates").optional(),
  NATS_TLS_CERT_FILE: pemFile(certificate, "a PEM client certificate").optional(),
  NATS_TLS_KEY_FILE: pemFile(privateKey, "an unencrypted PEM private key").optional(),
  /** Prefix of the replies this client asks for, for accounts that allow each user only its own (default `_INBOX`). */
  NATS_INBOX_PREFIX: z
    .string()
    // As nats.js checks it: tokens separated by dots, no whitespace, no wildcards.
    .regex(/^[^\s.*>]+(\.[^\s.*>]+)*$/, "must be subject tokens separated by dots, without spaces or wildcards (* >)")
    .optional(),
  NATS_NAMESPACE: z
    .string()
    .regex(/^[A-Za-z0-9_-]*$/, "may only contain letters, digits, '_' and '-'")
    .max(32)
    .default(""),
  STREAM_REPLICAS: envInt(1, 5).default(1),
  /** How long the event streams keep history (see streamMaxAgeMs). */
  STREAM_MAX_AGE_MS: streamMaxAgeMs().default(7 * 24 * 3600_000),
  /**
   * The DLQ's own max_age. A dead letter is work left for an operator, and often the only copy
   * of its event once the event stream's max_age has passed: by default it stays until it is
   * replayed or purged, rather than expiring with the history.
   */
  DLQ_MAX_AGE_MS: streamMaxAgeMs().default(0),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  SHUTDOWN_TIMEOUT_MS: durationMs(10_000, 100),
  MIGRATE_ON_START: booleanFromEnv.default(true),
  RETRY_DELAYS_MS: z
    .string()
    .default("1000,5000,30000")
    .transform((v, ctx) => {
      const raw = v.split(",").map((p) => p.trim());
      const parts = raw.map(Number);
      // Digits only: Number("") is 0, so "1000,,5000" or " " would quietly mean a retry at once.
      if (raw.some((p) => !/^\d+$/.test(p)) || parts.some((n) => n > MAX_TIMER_MS)) {
        ctx.addIssue({ code: "custom", message: `must be a comma-separated list of milliseconds (at most ${MAX_TIMER_MS} each), e.g. 1000,5000,30000` });
        return z.NEVER;
      }
      return parts;
    }),
  MAX_DELIVER: envInt(2, 100).default(5),
  OUTBOX_POLL_MS: durationMs(1000),
  /** Idempotency keys are kept at least this long (default 24 h). */
  IDEMPOTENCY_TTL_MS: durationMs(24 * 3600_000),
  SERVICE_INSTANCE: z.string().optional(),
  /** V8's old-generation growing factor, as a percentage over 1 × (see applyHeapGrowingPercent); 0: V8's own. */
  HEAP_GROWING_PERCENT: envInt(0, 1000).default(DEFAULT_HEAP_GROWING_PERCENT),
});

export type BaseConfig = z.infer<typeof baseConfigSchema>;

/** What a NATS client reads (services and CLIs alike): `baseConfigSchema.pick(NATS_CLIENT_VARIABLES)`. */
export const NATS_CLIENT_VARIABLES = {
  NATS_URL: true,
  NATS_NAMESPACE: true,
  NATS_USER: true,
  NATS_PASSWORD: true,
  NATS_TOKEN: true,
  NATS_CREDS_FILE: true,
  NATS_TLS_CA_FILE: true,
  NATS_TLS_CERT_FILE: true,
  NATS_TLS_KEY_FILE: true,
  NATS_INBOX_PREFIX: true,
} as const;

type Issue = { variable: string; problem: string };

/**
 * Rules between variables, which no single variable's schema sees; checked for any schema that
 * has them (a service's, or a CLI's pick of the base).
 */
function crossVariableIssues(c: Record<string, unknown>): Issue[] {
  const cert = c.NATS_TLS_CERT_FILE as string | undefined;
  const key = c.NATS_TLS_KEY_FILE as string | undefined;
  if (cert !== undefined && key === undefined) return [{ variable: "NATS_TLS_KEY_FILE", problem: "is required with NATS_TLS_CERT_FILE (the client certificate's private key)" }];
  if (key !== undefined && cert === undefined) return [{ variable: "NATS_TLS_CERT_FILE", problem: "is required with NATS_TLS_KEY_FILE (the certificate of that key)" }];
  if (cert !== undefined && key !== undefined && !keyOfCertificate(cert, key)) {
    return [{ variable: "NATS_TLS_KEY_FILE", problem: "is not the private key of the certificate in NATS_TLS_CERT_FILE" }];
  }
  return [];
}

const configError = (issues: Issue[]) => new ConfigError(`invalid configuration: ${issues.map((i) => `${i.variable} ${i.problem}`).join("; ")}`, issues);

/**
 * Parses `env` with `schema`; throws a ConfigError whose message names each bad variable.
 * Empty strings count as unset, so `PORT=` falls back to the default instead of failing.
 */
export function loadConfig<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined>,
): z.infer<S> {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const result = schema.safeParse(cleaned);
  if (result.success) {
    const issues = crossVariableIssues(result.data as Record<string, unknown>);
    if (issues.length > 0) throw configError(issues);
    return result.data;
  }
  throw configError(
    result.error.issues.map((i) => ({
      variable: i.path.map(String).join(".") || "(environment)",
      problem: i.message,
    })),
  );
}

/**
 * For entry points: like loadConfig, but a bad environment ends the process with exit code 2
 * and one line naming each variable, instead of a stack trace.
 */
export function loadConfigOrExit<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>, program: string): z.infer<S> {
  try {
    return loadConfig(schema, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${program}: ${err.message}\n`);
    process.exit(2);
  }
}

/** A URL (or comma-separated URLs) with any password replaced by `***`, for messages and logs. */
export const redactUrl = (url: string): string => url.replace(/(\/\/[^/@\s:]*):[^/@\s]*@/g, "$1:***@");
