import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";

/** libpq's file parameters, which postgres.js does not know: it sent them to the server as settings. */
const FILE_PARAMETERS = ["sslrootcert", "sslcert", "sslkey"] as const;
const VERIFYING = new Set(["require", "verify-ca", "verify-full"]);

type Query = { sslmode?: string; sslrootcert?: string; sslcert?: string; sslkey?: string };

function queryOf(url: string): { base: string; params: URLSearchParams } {
  const at = url.indexOf("?");
  return at < 0 ? { base: url, params: new URLSearchParams() } : { base: url.slice(0, at), params: new URLSearchParams(url.slice(at + 1)) };
}

function read(params: URLSearchParams): Query {
  const q: Query = {};
  for (const k of ["sslmode", ...FILE_PARAMETERS] as const) {
    const v = params.get(k);
    if (v !== null) q[k] = v;
  }
  return q;
}

/** Files the URL names, as libpq reads them (`sslrootcert=system` is not a file: postgres.js takes it). */
const namesFiles = (q: Query) => (q.sslrootcert !== undefined && q.sslrootcert !== "system") || q.sslcert !== undefined || q.sslkey !== undefined;

/**
 * What is wrong with a postgres:// URL's TLS files, for the config check (undefined: nothing).
 * The files themselves are checked by the caller (readable, PEM of their kind).
 */
export function postgresTlsProblem(url: string): string | undefined {
  const q = read(queryOf(url).params);
  if (!namesFiles(q)) return undefined;
  // libpq would use them only where TLS is required; postgres.js "prefer" falls back to plain text.
  if (!q.sslmode || !VERIFYING.has(q.sslmode)) return "names sslrootcert, sslcert or sslkey: give sslmode=require, verify-ca or verify-full with them";
  if ((q.sslcert === undefined) !== (q.sslkey === undefined)) return "has sslcert without sslkey, or sslkey without sslcert: a client certificate needs both";
  return undefined;
}

/** The files a postgres:// URL names (for the config's checks of each). */
export function postgresTlsFiles(url: string): { sslrootcert?: string; sslcert?: string; sslkey?: string } {
  const { sslmode: _, ...files } = read(queryOf(url).params);
  if (files.sslrootcert === "system") delete files.sslrootcert;
  return files;
}

/**
 * libpq's `sslrootcert`, `sslcert` and `sslkey` for postgres.js: the URL without them, and the
 * TLS options they make. postgres.js takes `sslmode` (verify-full checks the server's certificate
 * against the system's CAs and NODE_EXTRA_CA_CERTS) but passed any other parameter to the server
 * as a setting, so a URL as a managed Postgres documents it (`?sslmode=verify-full&sslrootcert=
 * /certs/ca.pem`) failed every connect with `unrecognized configuration parameter "sslrootcert"`.
 * The files are read here, once per pool: a renewed certificate is used from the next start.
 * As in libpq, `require` with a root certificate verifies the chain (as verify-ca does), and
 * verify-ca does not check the host name.
 */
export function postgresTls(url: string): { url: string; ssl?: ConnectionOptions } {
  const { base, params } = queryOf(url);
  const q = read(params);
  if (!namesFiles(q)) return { url };
  for (const k of FILE_PARAMETERS) params.delete(k);
  params.delete("sslmode");
  const rest = params.toString();
  const ssl: ConnectionOptions = {};
  if (q.sslrootcert !== undefined && q.sslrootcert !== "system") ssl.ca = readFileSync(q.sslrootcert);
  if (q.sslcert !== undefined) ssl.cert = readFileSync(q.sslcert);
  if (q.sslkey !== undefined) ssl.key = readFileSync(q.sslkey);
  // require without a root certificate: encrypted, not verified (postgres.js's own "require").
  if (q.sslmode === "require" && ssl.ca === undefined) ssl.rejectUnauthorized = false;
  if (q.sslmode === "verify-ca" || (q.sslmode === "require" && ssl.ca !== undefined)) ssl.checkServerIdentity = () => undefined;
  return { url: rest ? `${base}?${rest}` : base, ssl };
}
