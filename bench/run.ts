// `npm run bench`: measures this machine's limits and the system side by side, prints a table,
// writes bench/results/<timestamp>.json and bench/results/latest.md. `--smoke` runs a few seconds,
// `--quick` a shorter comparison run, `--cpu-prof=<dir>` makes each service write a CPU profile.
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fullOptions, quickOptions, runBench, smokeOptions } from "./bench.js";
import { markdown, plainTable } from "./report.js";
import { flagsNpmTook } from "../scripts/npm-flags.js";

const usage = "usage: npm run bench -- [--smoke | --quick] [--cpu-prof=<dir>]";
const args = process.argv.slice(2);
// A typo (--smok) or a flag npm took for itself (before `--`) would otherwise start the full
// run, minutes long, and overwrite bench/results/latest.md.
const unknown = args.filter((a) => a !== "--smoke" && a !== "--quick" && !/^--cpu-prof=.+/.test(a));
const toNpm = flagsNpmTook(["smoke", "quick", "cpu-prof"]);
if (unknown.length > 0 || toNpm.length > 0 || (args.includes("--smoke") && args.includes("--quick"))) {
  const why = unknown.length > 0 ? `unknown argument ${unknown.join(" ")}` : toNpm.length > 0 ? `${toNpm[0]!.flag} went to npm (before \`--\`); put it after` : "--smoke and --quick are two different runs; pick one";
  process.stderr.write(`bench: ${why}\n${usage}\n`);
  process.exit(2);
}
const smoke = args.includes("--smoke");
const quick = args.includes("--quick");
const started = Date.now();
const profile = args.find((a) => a.startsWith("--cpu-prof="))?.slice("--cpu-prof=".length);
const result = await runBench({ ...(smoke ? smokeOptions : quick ? quickOptions : fullOptions), cpuProfileDir: profile, log: (l) => process.stderr.write(`${l}\n`) });
const dir = fileURLToPath(new URL("./results/", import.meta.url));
mkdirSync(dir, { recursive: true });
const stamp = result.startedAt.replaceAll(":", "-").replace(/\..*/, "");
writeFileSync(`${dir}${stamp}${smoke ? "-smoke" : quick ? "-quick" : ""}.json`, `${JSON.stringify(result, null, 2)}\n`);
if (!smoke && !quick) writeFileSync(`${dir}latest.md`, markdown(result));
process.stdout.write(`${plainTable(result)}\n\nbench took ${((Date.now() - started) / 1000).toFixed(0)} s; results in bench/results/${stamp}${smoke ? "-smoke" : quick ? "-quick" : ""}.json\n`);
process.exit(0);
