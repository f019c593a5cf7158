import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";

/** libpq's file parameters, which postgres.js does not know: it sent them to the server as settings. */
const FILE_PARAMETERS = ["sslrootcert", "sslcert", "sslkey"] as const;
/** The TLS parameters postgres.js itself reads from the URL. */
const DRIVER_PARAMETERS = new Set(["ssl", "sslmode", "sslnegotiation"]);
const TLS_REQUIRED = new Set(["require", "verify-ca", "verify-full"]);

type Query = { sslmode?: string; sslrootcert?: string; sslcert?: string; sslkey?: string };

/** Decoded as libpq does: `%XX` only, so a `+` in a file name stays a `+`. */
const decode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** The URL before `?`, and its query's `key=value` segments as written. */
function segmentsOf(url: string): { base: string; segments: { key: string; value: string; raw: string }[] } {
  const at = url.indexOf("?");
  if (at < 0) return { base: url, segments: [] };
  const segments = url
    .slice(at + 1)
    .split("&")
    .filter(Boolean)
    .map((raw) => {
      const eq = raw.indexOf("=");
      return eq < 0 ? { key: decode(raw), value: "", raw } : { key: decode(raw.slice(0, eq)), value: decode(raw.slice(eq + 1)), raw };
    });
  return { base: url.slice(0, at), segments };
}

function read(url: string): Query {
  const q: Query = {};
  // An empty value is no value, as in libpq.
  for (const { key, value } of segmentsOf(url).segments) if (value !== "" && (key === "sslmode" || (FILE_PARAMETERS as readonly string[]).includes(key))) q[key as keyof Query] = value;
  return q;
}

/** Files the URL names (`sslrootcert=system` is not one: the system's CAs, with verify-full). */
const namesFiles = (q: Query) => (q.sslrootcert !== undefined && q.sslrootcert !== "system") || q.sslcert !== undefined || q.sslkey !== undefined;

/**
 * What is wrong with a postgres:// URL's TLS parameters, for the config check (undefined:
 * nothing). The files themselves are checked by the caller (readable, PEM of their kind).
 */
export function postgresTlsProblem(url: string): string | undefined {
  const unknown = segmentsOf(url).segments.find(({ key }) => key.startsWith("ssl") && !DRIVER_PARAMETERS.has(key) && !(FILE_PARAMETERS as readonly string[]).includes(key));
  // postgres.js would send it to the server as a setting, which refuses every connect.
  if (unknown) return `has ${unknown.key}, which this client does not support (of libpq's TLS parameters it takes sslmode, sslrootcert, sslcert and sslkey)`;
  const q = read(url);
  // As libpq 16: the system's CAs mean checking the server's name too.
  if (q.sslrootcert === "system" && q.sslmode !== undefined && q.sslmode !== "verify-full") return `has sslrootcert=system with sslmode=${q.sslmode}: the system's CAs go with sslmode=verify-full`;
  if (!namesFiles(q)) return undefined;
  // libpq would use them only where TLS is required; postgres.js "prefer" falls back to plain text.
  if (q.sslrootcert !== "system" && (!q.sslmode || !TLS_REQUIRED.has(q.sslmode))) return "names sslrootcert, sslcert or sslkey: give sslmode=require, verify-ca or verify-full with them";
  if ((q.sslcert === undefined) !== (q.sslkey === undefined)) return "has sslcert without sslkey, or sslkey without sslcert: a client certificate needs both";
  return undefined;
}

/** The files a postgres:// URL names (for the config's checks of each). */
export function postgresTlsFiles(url: string): { sslrootcert?: string; sslcert?: string; sslkey?: string } {
  const { sslmode: _, ...files } = read(url);
  if (files.sslrootcert === "system") delete files.sslrootcert;
  return files;
}

/**
 * A file's contents, read again each time the property is read. postgres.js copies its `ssl`
 * options (Object.assign) for every connection it opens, so each new connection uses the files
 * as they are then: a certificate renewed on disk (cert-manager, a Secret the kubelet updates) is
 * used without a restart. A file that cannot be read at that moment (mid-rotation, removed) gives
 * its last contents: a throw there would be an unhandled rejection in the driver.
 */
function reread(path: string): PropertyDescriptor {
  let last = readFileSync(path);
  return {
    enumerable: true,
    get() {
      try {
        last = readFileSync(path);
      } catch {
        // keep the last contents read
      }
      return last;
    },
  };
}

/**
 * libpq's `sslrootcert`, `sslcert` and `sslkey` for postgres.js: the URL without them, and the
 * TLS options they make. postgres.js takes `sslmode` (verify-full checks the server's certificate
 * against Node's CA list and NODE_EXTRA_CA_CERTS) but passed any other parameter to the server as
 * a setting, so a URL as managed Postgres services document it (`?sslmode=verify-full&sslrootcert=
 * /certs/ca.pem`) failed every connect with `unrecognized configuration parameter "sslrootcert"`.
 * The files are read again for every new connection (see reread).
 * As in libpq, with a root certificate file `verify-ca` checks the chain but not the server's
 * name, and so does `require`; without one, `require` verifies nothing (postgres.js's own
 * `require`), and `verify-ca`, like `verify-full` and `sslrootcert=system`, checks both against
 * the default CAs (postgres.js has no verify-ca of its own).
 */
export function postgresTls(url: string): { url: string; ssl?: ConnectionOptions } {
  const q = read(url);
  // sslrootcert=system too: postgres.js maps it to verify-full, but also sends it to the server.
  if (!namesFiles(q) && q.sslrootcert === undefined) return { url };
  const { base, segments } = segmentsOf(url);
  const rest = segments.filter(({ key }) => key !== "sslmode" && !(FILE_PARAMETERS as readonly string[]).includes(key)).map((seg) => seg.raw);
  const ssl: ConnectionOptions = {};
  const ownCa = q.sslrootcert !== undefined && q.sslrootcert !== "system";
  if (ownCa) Object.defineProperty(ssl, "ca", reread(q.sslrootcert!));
  if (q.sslcert !== undefined) Object.defineProperty(ssl, "cert", reread(q.sslcert));
  if (q.sslkey !== undefined) Object.defineProperty(ssl, "key", reread(q.sslkey));
  const mode = q.sslrootcert === "system" ? "verify-full" : q.sslmode;
  if (mode === "require" && !ownCa) ssl.rejectUnauthorized = false;
  else if ((mode === "verify-ca" || mode === "require") && ownCa) ssl.checkServerIdentity = () => undefined;
  return { url: rest.length > 0 ? `${base}?${rest.join("&")}` : base, ssl };
}
