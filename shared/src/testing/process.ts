import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { waitFor } from "./wait.js";

/** Ports freePort has handed out in this process: each is released for its taker to bind later. */
const handedOut = new Set<number>();

/**
 * Where freePort looks: below the kernel's ephemeral range. A port from that range (what
 * listen(0) gives) is handed to a process that binds it later, and meanwhile the kernel could
 * give it to any outgoing connection on the machine as its source port, or to another test's
 * listen(0): CI once saw `npm start` refuse a port freePort had just found free. Below it only
 * explicit binds compete. Falls back to listen(0) where the range cannot be read.
 */
const below = (() => {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_024 ? { from: Math.max(10_000, low - 20_000), to: low - 1 } : undefined;
  } catch {
    return undefined;
  }
})();

/** Binds `port` (0: any) on 127.0.0.1 and releases it; the port it got, or undefined if taken. */
const tryPort = (port: number) =>
  new Promise<number | undefined>((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", (err: NodeJS.ErrnoException) => (err.code === "EADDRINUSE" || err.code === "EACCES" ? resolve(undefined) : reject(err)));
    srv.listen(port, "127.0.0.1", () => {
      const { port: got } = srv.address() as { port: number };
      srv.close(() => resolve(got));
    });
  });

/**
 * A port nothing listens on now, and one this process has not been given before: a port is
 * free again the moment freePort releases it, so two calls before either is bound (a nats-server's
 * cluster port, then its client port) could get the same one and the second bind fail.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const candidate = below && attempt < 200 ? below.from + Math.floor(Math.random() * (below.to - below.from + 1)) : 0;
    if (candidate !== 0 && handedOut.has(candidate)) continue;
    const port = await tryPort(candidate);
    if (port === undefined) continue;
    if (!handedOut.has(port) || attempt >= 300) {
      handedOut.add(port);
      return port;
    }
  }
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Its exit, if it comes within `ms`; otherwise the process (and, when detached, everything it
   * started) is SIGKILLed and this rejects with its last output, so a hung shutdown fails the
   * test instead of hanging it.
   */
  exitWithin(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Children still running, and the process groups of detached ones (which outlive their leader
 * when it exits before what it started): killed when the test process exits, whatever a failed
 * test skipped.
 */
const running = new Set<ChildProcess>();
const groups = new Set<number>();
let exitHook = false;

/** SIGKILL to the child, or to its whole process group when it leads one (detached). */
function killHard(child: ChildProcess): void {
  try {
    if (groupLeaders.has(child) && child.pid) process.kill(-child.pid, "SIGKILL");
    else child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
}
const groupLeaders = new WeakSet<ChildProcess>();

/**
 * SIGKILLs `child` (its group, when it leads one) if it is still running when the test process
 * exits, whatever clean-up a failed or timed-out test skipped.
 */
export function killOnExit(child: ChildProcess): void {
  running.add(child);
  child.once("exit", () => running.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once("exit", () => {
    for (const c of running) killHard(c);
    for (const pgid of groups) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        // The group is empty.
      }
    }
  });
}

/** Whether any process of the group `pgid` is still running (signal 0 only checks). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Spawns a node script, keeps its output lines (for assertions and for failure messages).
 * `detached` puts it in a process group of its own, for a script that starts processes itself
 * (npm start): a last-resort kill then takes its children along instead of orphaning them.
 * `nodeArgs` go to node before the script: `["--import", "tsx"]` runs a TypeScript script the
 * way the npm scripts do, in one process (tsx's own CLI is a second process that SIGKILLs a
 * child whose event loop is busy for 60 ms when a signal arrives, skipping its clean-up).
 */
export function startProcess(
  script: string,
  args: string[],
  env: Record<string, string>,
  opts: { cwd?: string; echo?: boolean; detached?: boolean; nodeArgs?: string[] } = {},
): ManagedProcess {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: opts.detached,
  });
  if (opts.detached) {
    groupLeaders.add(child);
    if (child.pid) groups.add(child.pid);
  }
  killOnExit(child);
  const output: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (!line) continue;
      output.push(line);
      if (output.length > 5000) output.shift();
      if (opts.echo) process.stderr.write(`${line}\n`);
    }
  };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    output,
    exited,
    async kill(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    async exitWithin(ms) {
      const started = Date.now();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<"late">((done) => (timer = setTimeout(() => done("late"), ms)));
      const result = await Promise.race([exited, late]).finally(() => clearTimeout(timer));
      if (result === "late") {
        killHard(child);
        await exited;
        throw new Error(`${script} did not exit within ${ms} ms and was killed; its last output:\n${output.slice(-20).join("\n")}`);
      }
      // A leader that exits is done only when what it started is gone too: a process it left
      // running is a leak its test should fail on (and is killed, not left to the next test).
      const pgid = child.pid;
      if (!pgid || !groupLeaders.has(child)) return result;
      const empty = await waitFor(async () => (groupAlive(pgid) ? undefined : true), {
        timeoutMs: Math.max(1_000, ms - (Date.now() - started)),
        what: "the exited process's group to empty",
      }).catch(() => false);
      if (empty) {
        groups.delete(pgid);
        return result;
      }
      killHard(child);
      throw new Error(`${script} exited (${result.code ?? result.signal}) but left processes of its group running, now killed; its last output:\n${output.slice(-20).join("\n")}`);
    },
  };
}

/** Waits until `GET {baseUrl}/readyz` answers 200. */
export async function waitReady(baseUrl: string, proc?: ManagedProcess, timeoutMs = 30_000): Promise<true> {
  // A timeout says what the service last answered and logged: why it was not ready. Kept apart
  // from the wait's own last error, which a probe cut short by the deadline would replace.
  let last = "no answer yet";
  return waitFor(
    async () => {
      const res = await fetch(`${baseUrl}/readyz`).catch((err: Error) => {
        last = `no answer (${(err.cause as { code?: string } | undefined)?.code ?? err.message})`;
        return undefined;
      });
      if (res?.status === 200) return true;
      if (res) last = `last answer ${res.status} ${(await res.text()).slice(0, 500)}`;
      return undefined;
    },
    {
      timeoutMs,
      what: `${baseUrl}/readyz`,
      abortIf: () =>
        proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)
          ? `process exited with ${proc.child.exitCode ?? proc.child.signalCode}:\n${proc.output.slice(-20).join("\n")}`
          : undefined,
    },
  ).catch((err: Error) => {
    // (An exited process's output is in the message already.)
    if (!err.message.startsWith("timed out")) throw err;
    throw new Error(`${err.message}; ${last}${proc ? `\nits last output:\n${proc.output.slice(-20).join("\n")}` : ""}`);
  });
}
