/**
 * The services `npm start` and `npm run replay` run, found rather than listed: every folder under
 * services/ whose package.json has an "orderflow" block. A new service is picked up by adding
 * that block (`"orderflow": { "port": 3004, "envPrefix": "NOTIFY" }`), with no edit here.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

export interface LocalService {
  /** The folder under services/, which is also the service's name everywhere else. */
  readonly name: string;
  readonly dir: string;
  /** `<envPrefix>_PORT` moves its port, `<envPrefix>_DATABASE_URL` picks its database. */
  readonly envPrefix: string;
  readonly port: string;
  /** The port in package.json: the order services start in (and metrics ports follow). */
  readonly defaultPort: number;
  /** The database URL given in the environment, if any (else the caller's default). */
  readonly databaseUrl: string | undefined;
  /** It has a replay entry (src/replay.ts, built to dist/replay.js). */
  readonly replays: boolean;
}

interface Manifest {
  orderflow?: { port?: unknown; envPrefix?: unknown };
}

/** METRICS_PORT is npm start's metrics base port: a service may not take that prefix. */
const RESERVED_PREFIXES = ["METRICS"];

/** Derived from the folder when the block names no prefix: notification-service → NOTIFICATION_SERVICE. */
const prefixOf = (name: string) => name.toUpperCase().replace(/[^A-Z0-9]+/g, "_");

/** The services under `root`/services, in the order of their default ports. Throws on a malformed block or a clash. */
export function localServices(root: string, env: NodeJS.ProcessEnv = process.env): LocalService[] {
  const servicesDir = join(root, "services");
  const found: LocalService[] = [];
  for (const name of readdirSync(servicesDir).sort()) {
    const dir = join(servicesDir, name);
    const manifestPath = join(dir, "package.json");
    if (!existsSync(manifestPath)) continue;
    let manifest: Manifest;
    try {
      manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    } catch (err) {
      throw new Error(`${manifestPath}: ${(err as Error).message}`);
    }
    const block = manifest.orderflow;
    if (block === undefined) continue;
    if (block === null || typeof block !== "object") throw new Error(`${manifestPath}: "orderflow" must be an object like { "port": 3004 }`);
    const { port, envPrefix = prefixOf(name) } = block;
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
      throw new Error(`${manifestPath}: "orderflow.port" must be a port number (1-65535), got ${JSON.stringify(port)}`);
    }
    const prefixSource = "envPrefix" in block ? `"orderflow.envPrefix"` : `the prefix taken from the folder name (set "orderflow.envPrefix")`;
    if (typeof envPrefix !== "string" || !/^[A-Z][A-Z0-9_]*$/.test(envPrefix)) {
      throw new Error(`${manifestPath}: ${prefixSource} must be upper-case letters, digits and _, starting with a letter; got ${JSON.stringify(envPrefix)}`);
    }
    if (RESERVED_PREFIXES.includes(envPrefix)) {
      throw new Error(`${manifestPath}: ${prefixSource} ${envPrefix} would clash with npm start's own ${envPrefix}_* variables; set another`);
    }
    const override = env[`${envPrefix}_PORT`];
    if (override && !(/^[0-9]{1,5}$/.test(override) && Number(override) >= 1 && Number(override) <= 65535)) {
      throw new Error(`${envPrefix}_PORT must be a port number (1-65535), got ${JSON.stringify(override)}`);
    }
    found.push({
      name,
      dir,
      envPrefix,
      port: override ? String(Number(override)) : String(port),
      defaultPort: port as number,
      databaseUrl: env[`${envPrefix}_DATABASE_URL`] || undefined,
      replays: existsSync(join(dir, "src", "replay.ts")) || existsSync(join(dir, "dist", "replay.js")),
    });
    const added = found.at(-1)!;
    const clash = found.find((s) => s !== added && (s.envPrefix === added.envPrefix || s.port === added.port));
    if (clash) throw new Error(`${name} and ${clash.name} have the same ${clash.envPrefix === added.envPrefix ? `envPrefix ${added.envPrefix}` : `port ${added.port}`}`);
  }
  return found.sort((a, b) => a.defaultPort - b.defaultPort);
}

/** Where npm start keeps its local state (PGlite directories, nats-server's store): ORDERFLOW_DATA_DIR or .data/. */
export const dataDirectory = (root: string, env: NodeJS.ProcessEnv = process.env) => resolve(env.ORDERFLOW_DATA_DIR ?? join(root, ".data"));

/** A service's database: the one its environment names, else its embedded PGlite under the data directory. */
export const databaseUrlOf = (service: LocalService, root: string, env: NodeJS.ProcessEnv = process.env) =>
  service.databaseUrl || `pglite://${join(dataDirectory(root, env), service.name)}`;
