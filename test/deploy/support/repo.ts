import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const repoRoot = fileURLToPath(new URL("../../..", import.meta.url));
export const repoPath = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));

const execFileP = promisify(execFile);

/** Runs a command; rejects with its stderr in the message when it exits non-zero. */
export async function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  try {
    const { stdout, stderr } = await execFileP(cmd, args, {
      cwd: opts.cwd ?? repoRoot,
      env: opts.env ?? process.env,
      timeout: opts.timeoutMs ?? 600_000,
      maxBuffer: 256 << 20,
      encoding: "utf8",
    });
    return { stdout, stderr };
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string; code?: number };
    throw new Error(`${cmd} ${args.join(" ")} failed (${e.code}): ${(e.stderr || e.stdout || e.message).slice(-4000)}`, { cause: err });
  }
}
