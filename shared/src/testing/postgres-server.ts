import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, killOnExit } from "./process.js";
import { waitFor } from "./wait.js";

export interface OwnPostgres {
  readonly port: number;
  /** Its data directory, where `files` were copied. */
  readonly dir: string;
  /** `postgres://<user>@127.0.0.1:<port>/postgres`, with `query` appended. */
  url(user?: string, query?: string): string;
  /** Stops it (fast shutdown) and deletes its files. */
  dispose(): Promise<void>;
}

/** The newest installed PostgreSQL's programs (Debian keeps them out of PATH). */
function pgBin(program: string): string {
  const versions = existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const path = join("/usr/lib/postgresql", v, "bin", program);
    if (existsSync(path)) return path;
  }
  return program;
}

/** The postgres account's ids: the server refuses to run as root, and so do these tests' processes. */
function postgresAccount(): { uid: number; gid: number } {
  const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
  return { uid: id("-u"), gid: id("-g") };
}

/**
 * A PostgreSQL server of the test's own, for what the machine's shared one must not be changed
 * for (TLS, client certificates, its pg_hba.conf): a fresh cluster in a temp dir, on a free port,
 * run as the postgres account, with `settings` as `-c` options and `hba` as its whole
 * pg_hba.conf. `files` (name → path) are copied into the data directory, owned by the server
 * with mode 0600, as it wants its TLS key; settings can name them relative to it.
 */
export async function startOwnPostgres({ settings = {}, hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n", files = {} }: { settings?: Record<string, string>; hba?: string; files?: Record<string, string> } = {}): Promise<OwnPostgres> {
  const { uid, gid } = postgresAccount();
  const dir = mkdtempSync(join(tmpdir(), "of-pg-"));
  const data = join(dir, "data");
  let port: number;
  try {
    chownSync(dir, uid, gid);
    const init = spawnSync(pgBin("initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], { uid, gid, encoding: "utf8" });
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.error?.message}`);
    writeFileSync(join(data, "pg_hba.conf"), hba);
    for (const [name, from] of Object.entries(files)) {
      copyFileSync(from, join(data, name));
      chownSync(join(data, name), uid, gid);
      chmodSync(join(data, name), 0o600);
    }
    port = await freePort();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const options = { listen_addresses: "127.0.0.1", port: String(port), unix_socket_directories: dir, fsync: "off", autovacuum: "off", ...settings };
  let child: ChildProcess | undefined;
  const server: OwnPostgres = {
    port,
    dir: data,
    url: (user = "postgres", query = "") => `postgres://${user}@127.0.0.1:${port}/postgres${query ? `?${query}` : ""}`,
    async dispose() {
      const c = child;
      if (c && c.exitCode === null && c.signalCode === null) {
        await new Promise<void>((done) => {
          const hard = setTimeout(() => c.kill("SIGKILL"), 10_000);
          c.once("exit", () => (clearTimeout(hard), done()));
          c.kill("SIGINT"); // fast shutdown: its backends go with it
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const args = ["-D", data, ...Object.entries(options).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
  const c = spawn(pgBin("postgres"), args, { uid, gid, stdio: ["ignore", "ignore", "pipe"] });
  child = c;
  killOnExit(c);
  let stderr = "";
  let spawnError: Error | undefined;
  // No such program: said below, not thrown unhandled; and nothing for dispose() to wait for.
  c.once("error", (err) => {
    spawnError = err;
    child = undefined;
  });
  let ready = false;
  c.stderr!.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
    ready ||= stderr.includes("ready to accept connections");
  });
  try {
    await waitFor(() => ready, { what: `postgres on ${port}`, timeoutMs: 20_000, abortIf: () => (spawnError ? `postgres did not start: ${spawnError.message}` : c.exitCode !== null || c.signalCode !== null ? `postgres exited with ${c.exitCode ?? c.signalCode}: ${stderr.trim()}` : undefined) });
  } catch (err) {
    await server.dispose();
    throw err;
  }
  return server;
}
