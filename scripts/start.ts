/**
 * `npm start`: the whole system on one machine, every service local-services.ts finds. Databases
 * from <PREFIX>_DATABASE_URL (USER_, ORDER_, EVENTLOG_) or embedded PGlite under .data/
 * (ORDERFLOW_DATA_DIR), ports from <PREFIX>_PORT; NATS from NATS_URL when reachable,
 * otherwise a nats-server started here (JetStream under .data/nats). Logs of every service in
 * one stream, prefixed by service; Ctrl-C stops everything cleanly.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { connect, createServer } from "node:net";
import { delimiter, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { baseConfigSchema, jetStreamProblem, loadConfig, NATS_CLIENT_VARIABLES, redactUrl, SERVICE_NODE_OPTIONS, type NatsClientConfig } from "@orderflow/shared";
import { databaseUrlOf, dataDirectory, localServices } from "./local-services.js";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const env = process.env;
const natsUrl = env.NATS_URL || "nats://127.0.0.1:4222";
// The services check it too, but this script reads it first: a sentence, not a stack trace.
let natsConfig: NatsClientConfig;
try {
  natsConfig = loadConfig(baseConfigSchema.pick(NATS_CLIENT_VARIABLES), { ...env, NATS_URL: natsUrl });
} catch (err) {
  process.stderr.write(`[orderflow] ${(err as Error).message}\n`);
  process.exit(2);
}
const dataDir = dataDirectory(root, env);
/** `METRICS_PORT=9464 npm start`: one port each (9464, 9465, …) in the services' order; 0 or unset, none. */
let metricsBase = 0;

let services: { name: string; port: string; portVariable: string; db: string }[];
try {
  services = localServices(root, env).map((s) => ({ name: s.name, port: s.port, portVariable: `${s.envPrefix}_PORT`, db: databaseUrlOf(s, root, env) }));
  metricsBase = metricsBaseOf(env.METRICS_PORT, services);
  // PGlite directories and nats-server's store go under it: a file there would fail each service
  // with its own ENOTDIR, naming a DATABASE_URL npm start made up.
  if (existsSync(dataDir) && !statSync(dataDir).isDirectory()) throw new Error(`ORDERFLOW_DATA_DIR (${dataDir}) is a file, not a directory; point it at a directory (it is created when missing)`);
} catch (err) {
  process.stderr.write(`[orderflow] ${(err as Error).message}\n`);
  process.exit(2);
}

/** METRICS_PORT as npm start spreads it: a whole number whose range fits, clear of the services' ports. */
function metricsBaseOf(raw: string | undefined, list: typeof services): number {
  if (raw === undefined || raw === "" || raw === "0") return 0;
  const last = 65535 - (list.length - 1);
  if (!/^[0-9]{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > last) {
    throw new Error(`METRICS_PORT must be a port number from 1 to ${last} (npm start gives its ${list.length} services one each, from it upwards), or 0 for no metrics; got ${JSON.stringify(raw)}`);
  }
  const base = Number(raw);
  for (const [i, s] of list.entries()) {
    const owner = list.find((o) => Number(o.port) === base + i);
    if (owner) throw new Error(`METRICS_PORT=${base} would give ${s.name} port ${base + i} for metrics, which is ${owner.name}'s (${owner.portVariable}); pick a METRICS_PORT clear of the services' ports`);
  }
  return base;
}

const children: { name: string; child: ChildProcess }[] = [];
let natsServer: ChildProcess | undefined;
let stopping = false;

function log(line: string) {
  process.stdout.write(`[orderflow] ${line}\n`);
}

/** The servers NATS_URL lists (comma-separated; nats://, tls:// or a bare host:port: the config refuses others). */
const natsServers = natsUrl.split(",").map((entry) => {
  const trimmed = entry.trim();
  // new URL("localhost:4299") would read "localhost:" as the scheme: give a bare host:port one.
  const { hostname, port } = new URL(trimmed.includes("://") ? trimmed : `nats://${trimmed}`);
  return { host: hostname.replace(/^\[|\]$/g, "") || "127.0.0.1", port: Number(port || 4222) };
});

/** A file this user may execute (existsSync alone would pick a directory or a non-executable file). */
function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function reachable({ host, port }: { host: string; port: number }, timeoutMs = 1000): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    const finish = (ok: boolean) => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}
const anyReachable = async (timeoutMs?: number) => (await Promise.all(natsServers.map((s) => reachable(s, timeoutMs)))).some(Boolean);

async function ensureNats(): Promise<string> {
  if (await anyReachable()) {
    log(`using NATS at ${redactUrl(natsUrl)}`);
    // A server started without -js answers connections but not JetStream: the services would
    // wait, not ready, for ever; say why once here. Not fatal: JetStream may still be starting.
    const problem = await jetStreamProblem(natsConfig);
    if (problem) {
      const tls = /certificate|ssl|tls/i.test(problem.message);
      const hint = problem.credentials ? "Check NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_CREDS_FILE." : tls ? "Check NATS_TLS_CA_FILE, NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE." : "Is nats-server running with -js (JetStream)?";
      const what = tls ? "its TLS handshake fails" : "JetStream does not";
      process.stderr.write(`[orderflow] NATS at ${redactUrl(natsUrl)} answers, but ${what} (${problem.message.trim()}); the services stay not ready until it does. ${hint}\n`);
    }
    return natsUrl;
  }
  // Debian's package installs /usr/sbin/nats-server, which is not on an ordinary user's PATH.
  const candidates = env.NATS_SERVER_BIN
    ? [env.NATS_SERVER_BIN]
    : [...(env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"].filter(Boolean).map((dir) => join(dir, "nats-server"));
  // A server of one's own can only stand in for a single address on this machine.
  const local = natsServers.length === 1 && ["127.0.0.1", "localhost", "0.0.0.0", "::1", "::"].includes(natsServers[0]!.host);
  if (!local) {
    process.stderr.write(
      `[orderflow] NATS is not reachable at ${redactUrl(natsUrl)}, and npm start runs a nats-server of its own only for a single address on this machine.\n` +
        `  Start the NATS server(s) NATS_URL names, or unset NATS_URL to use a local one.\n`,
    );
    process.exit(1);
  }
  const binary = candidates.find(executable);
  if (env.NATS_SERVER_BIN && !binary && existsSync(env.NATS_SERVER_BIN)) {
    process.stderr.write(`[orderflow] NATS is not reachable at ${redactUrl(natsUrl)} and NATS_SERVER_BIN (${env.NATS_SERVER_BIN}) is not an executable file; name the nats-server binary itself\n`);
    process.exit(1);
  }
  if (!binary) {
    process.stderr.write(
      `[orderflow] NATS is not reachable at ${redactUrl(natsUrl)} and ${env.NATS_SERVER_BIN ? `NATS_SERVER_BIN (${env.NATS_SERVER_BIN}) does not exist` : "nats-server is not on the PATH (nor in /usr/sbin)"}.\n` +
        `  Install it (Debian/Ubuntu: apt-get install nats-server; or download it from the NATS releases page)\n` +
        `  and, if it is elsewhere, name it with NATS_SERVER_BIN; or point NATS_URL at a running server with JetStream enabled.\n`,
    );
    process.exit(1);
  }
  const { host, port } = natsServers[0]!;
  const storeDir = join(dataDir, "nats");
  try {
    mkdirSync(storeDir, { recursive: true });
  } catch (err) {
    process.stderr.write(`[orderflow] cannot create nats-server's store ${storeDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); set ORDERFLOW_DATA_DIR to a directory this user can write\n`);
    process.exit(1);
  }
  log(`starting ${binary} with JetStream in ${storeDir}`);
  natsServer = spawn(binary, ["-js", "-sd", storeDir, "-a", host, "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  // A binary that cannot be run after all (wrong architecture, removed meanwhile): without a
  // listener the spawn error would end this script with a stack trace.
  natsServer.once("error", (err) => {
    process.stderr.write(`[orderflow] cannot run ${binary}: ${err.message}\n`);
    void stop(1);
  });
  pipe("nats-server", natsServer);
  natsServer.once("exit", (code, signal) => {
    if (!stopping) {
      log(`nats-server exited (${code ?? signal}); stopping the rest`);
      void stop(1);
    }
  });
  for (let i = 0; i < 100 && !(await anyReachable(200)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await anyReachable(200))) {
    process.stderr.write(`[orderflow] the nats-server started here did not listen on ${host}:${port} in time (its output is above)\n`);
    await stop(1);
  }
  return natsUrl;
}

function pipe(name: string, child: ChildProcess) {
  const prefix = `[${name}] `;
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = "";
    stream?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) process.stdout.write(prefix + line + "\n");
    });
  }
}

/** Exited already: a process ended by a signal has a signalCode, and no exitCode. */
const gone = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  log("stopping…");
  await Promise.all(
    children.map(
      ({ child }) =>
        new Promise<void>((done) => {
          // Its exit event has fired already: waiting for it would wait for ever.
          if (gone(child)) return done();
          child.once("exit", () => done());
          child.kill("SIGTERM");
        }),
    ),
  );
  // No pid: it never ran (spawn failed), so no exit will come.
  if (natsServer && natsServer.pid !== undefined && !gone(natsServer)) {
    await new Promise<void>((done) => {
      natsServer!.once("exit", () => done());
      natsServer!.kill("SIGTERM");
    });
  }
  log("stopped");
  process.exit(code);
}

/** Whether another process listens on `port` (where the service will: HOST, default every interface). */
function portTaken(port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    // Other refusals (a HOST not on this machine, a port below 1024) the service words itself.
    probe.once("error", (err: NodeJS.ErrnoException) => done(err.code === "EADDRINUSE"));
    probe.listen(port, env.HOST || "0.0.0.0", () => probe.close(() => done(false)));
  });
}

async function main() {
  // First: a Ctrl-C or SIGTERM while nats-server or the services are still being started stops
  // what has started. Without a listener the signal's default action would end this script at
  // once and leave them running, without a parent.
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  // A service would say "set PORT", which npm start sets itself: name the variable that moves it.
  // Checked before NATS, so nothing is started only to be stopped again.
  for (const [i, s] of services.entries()) {
    if (await portTaken(Number(s.port))) {
      process.stderr.write(`[orderflow] ${s.name}: port ${s.port} is already in use by another process; set ${s.portVariable} to a free one\n`);
      process.exit(1);
    }
    // The service would say "set METRICS_PORT to a free one", but npm start derives each from the base.
    if (metricsBase && (await portTaken(metricsBase + i))) {
      process.stderr.write(`[orderflow] ${s.name}: its metrics port ${metricsBase + i} (METRICS_PORT=${metricsBase} + ${i}) is already in use by another process; set METRICS_PORT to a base with ${services.length} free ports from it upwards\n`);
      process.exit(1);
    }
  }
  const nats = await ensureNats();
  if (stopping) return;
  for (const [i, s] of services.entries()) {
    const child = spawn(process.execPath, [join(root, "services", s.name, "dist", "main.js")], {
      cwd: join(root, "services", s.name),
      env: { NODE_OPTIONS: SERVICE_NODE_OPTIONS, ...env, PORT: s.port, DATABASE_URL: s.db, NATS_URL: nats, METRICS_PORT: metricsBase ? String(metricsBase + i) : "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    pipe(s.name, child);
    child.once("exit", (code, signal) => {
      if (!stopping) {
        log(`${s.name} exited (${code ?? signal}); stopping the rest`);
        void stop(1);
      }
    });
    children.push({ name: s.name, child });
    log(`${s.name} → http://127.0.0.1:${s.port}${metricsBase ? ` (metrics on :${metricsBase + i}/metrics)` : ""}`);
  }
}

void main();
