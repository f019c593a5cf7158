/**
 * `npm run replay -- --service <name> [--from-seq N | --from-time T] [--dry-run] [--force]` (`--help` for the usage):
 * runs the service's own replay entry (services/<name>/dist/replay.js) against its database; any
 * service local-services.ts finds with a src/replay.ts can be named. DATABASE_URL wins; otherwise
 * the same defaults as `npm start` (<PREFIX>_DATABASE_URL or PGlite under .data/). NATS from NATS_URL (default nats://127.0.0.1:4222).
 */
import { spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { replayUsage } from "@orderflow/shared";
import { databaseUrlOf, localServices, type LocalService } from "./local-services.js";
import { flagsNpmTook } from "./npm-flags.js";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const env = process.env;
let targets: Map<string, LocalService>;
try {
  targets = new Map(localServices(root, env).filter((s) => s.replays).map((s) => [s.name, s]));
} catch (err) {
  process.stderr.write(`replay: ${(err as Error).message}\n`);
  process.exit(2);
}
const usage = replayUsage.replace("<service>", [...targets.keys()].join("|"));

const args = process.argv.slice(2);
// Help needs no service to run it with: the usage is the same for all.
if (args.includes("--help") || args.includes("-h")) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const given = args.flatMap((a, i) => (a === "--service" ? [args[i + 1]] : a.startsWith("--service=") ? [a.slice("--service=".length)] : []));
if (given.length > 1) {
  process.stderr.write(`replay: --service given ${given.length} times; name one\n`);
  process.exit(2);
}
const service = given[0];
if (!service || !targets.has(service)) {
  process.stderr.write(`replay: ${service ? `unknown service ${service}` : "--service is required"}\n${usage}\n`);
  process.exit(2);
}

// `npm run replay --from-seq=5 -- …` hands the flag to npm, not to us (npm only warns): refuse
// rather than run something else than was asked, e.g. a full rebuild (projection reset) instead
// of an incremental replay, or a real one instead of a preview.
const toNpm = flagsNpmTook(["dry-run", "from-seq", "from-time", "force"], env);
if (toNpm.length > 0) {
  const flags = toNpm.map((t) => t.flag).join(", ");
  const example = toNpm.map((t) => (t.flag === "--dry-run" || t.flag === "--force" ? t.flag : `${t.flag} …`)).join(" ");
  process.stderr.write(`replay: ${flags} went to npm (before \`--\`), not to the replay; put ${toNpm.length > 1 ? "them" : "it"} after, e.g. npm run replay -- --service ${service} ${example} (${toNpm.map((t) => t.variable).join(", ")} set; unset it if no flag was typed)\n`);
  process.exit(2);
}

const target = targets.get(service)!;
// PGlite is one process's files: with `npm start` running, the replay's open of the same data
// directory is refused (a pid file in it, see lockDataDirectory) instead of corrupting it.
const db = env.DATABASE_URL || databaseUrlOf(target, root, env);
const child = spawn(process.execPath, [join(root, "services", service, "dist", "replay.js"), ...args], {
  cwd: join(root, "services", service),
  env: { ...env, DATABASE_URL: db },
  stdio: "inherit",
});
// Ctrl-C reaches the child from the terminal (same process group) and it stops after its batch,
// saying where it left off: this wrapper waits for it instead of dying first. SIGTERM is passed on.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => child.kill("SIGTERM"));
child.once("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
