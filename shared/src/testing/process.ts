import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { waitFor } from "./wait.js";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Children still running; killed when the test process exits, whatever a failed test skipped. */
const running = new Set<ChildProcess>();
let exitHook = false;

/** Spawns a node script, keeps its output lines (for assertions and for failure messages). */
export function startProcess(script: string, args: string[], env: Record<string, string>, opts: { cwd?: string; echo?: boolean } = {}): ManagedProcess {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const c of running) c.kill("SIGKILL");
    });
  }
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
  };
}

/** Waits until `GET {baseUrl}/readyz` answers 200. */
export function waitReady(baseUrl: string, proc?: ManagedProcess, timeoutMs = 30_000): Promise<true> {
  return waitFor(
    async () => {
      const res = await fetch(`${baseUrl}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    {
      timeoutMs,
      what: `${baseUrl}/readyz`,
      abortIf: () =>
        proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)
          ? `process exited with ${proc.child.exitCode ?? proc.child.signalCode}:\n${proc.output.slice(-20).join("\n")}`
          : undefined,
    },
  );
}
