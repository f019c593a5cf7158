import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, killOnExit } from "./process.js";
import { waitFor } from "./wait.js";

export interface OwnNatsServer {
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM, or SIGKILL for a crash); its JetStream store stays. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and store. */
  start(): Promise<void>;
  /** Replaces the configuration given at start (`config`) and makes the server reread it (SIGHUP, as `nats-server --signal reload` does). */
  reconfigure(config: string): void;
  /** Empties the JetStream store of a stopped server, as a lost volume would: every stream, message and consumer gone. */
  wipeStore(): void;
  /** Stops it and deletes its store. */
  dispose(): Promise<void>;
}

const portOpen = (port: number) =>
  new Promise<boolean>((done) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), done(true)));
    s.once("error", () => (s.destroy(), done(false)));
  });

/**
 * A nats-server of the test's own, on a free port with JetStream in a temp dir, for fault tests
 * that stop or kill the broker (the machine's shared server is never touched). `config` is the
 * text of a configuration file (authorization, say): the server then runs from that file, which
 * starts with its address and JetStream store, so a reload (reconfigure) keeps both.
 */
export async function startOwnNatsServer({ binary = "nats-server", extraArgs = [] as string[], config }: { binary?: string; extraArgs?: string[]; config?: string } = {}): Promise<OwnNatsServer> {
  const port = await freePort();
  const store = mkdtempSync(join(tmpdir(), "of-nats-"));
  const confDir = config === undefined ? undefined : mkdtempSync(join(tmpdir(), "of-nats-conf-"));
  const confFile = confDir && join(confDir, "nats.conf");
  // Flags would not survive a reload: a file without a jetstream block switches JetStream off.
  const writeConfig = (text: string) => writeFileSync(confFile!, `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(store)} }\n${text}\n`);
  if (confFile) writeConfig(config!);
  let child: ChildProcess | undefined;
  const server: OwnNatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    async start() {
      const c = spawn(binary, [...(confFile ? ["-c", confFile] : ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", store]), ...extraArgs], { stdio: ["ignore", "ignore", "pipe"] });
      child = c;
      killOnExit(c);
      // A refused config or a taken port ends the process: say so at once, with its words.
      let stderr = "";
      let ready = false;
      c.stderr!.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4000);
        ready ||= stderr.includes("Server is ready");
      });
      const exited = () => (c.exitCode !== null || c.signalCode !== null ? `nats-server exited with ${c.exitCode ?? c.signalCode}: ${stderr.trim()}` : undefined);
      try {
        // Its own "ready", not only an open port: another process may hold the port it failed to take.
        await waitFor(async () => ready && (await portOpen(port)), { what: `nats-server on ${port}`, timeoutMs: 10_000, abortIf: exited });
      } catch (err) {
        c.kill("SIGKILL");
        throw err;
      }
    },
    async stop(signal = "SIGTERM") {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      await new Promise<void>((done) => {
        c.once("exit", () => done());
        c.kill(signal);
      });
    },
    wipeStore() {
      if (child && child.exitCode === null && child.signalCode === null) throw new Error("stop the nats-server before wiping its store");
      rmSync(store, { recursive: true, force: true });
      mkdirSync(store);
    },
    reconfigure(text) {
      if (!confFile) throw new Error("this nats-server was started without a config");
      writeConfig(text);
      child?.kill("SIGHUP");
    },
    async dispose() {
      await server.stop("SIGKILL");
      rmSync(store, { recursive: true, force: true });
      if (confDir) rmSync(confDir, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
  } catch (err) {
    await server.dispose().catch(() => {});
    throw err;
  }
  return server;
}
