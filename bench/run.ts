// `npm run bench`: measures this machine's limits and the system side by side, prints a table,
// writes bench/results/<timestamp>.json and bench/results/latest.md. `--smoke` runs a few seconds,
// `--quick` a shorter comparison run, `--cpu-prof=<dir>` makes each service write a CPU profile.
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fullOptions, quickOptions, runBench, smokeOptions } from "./bench.js";
import { markdown, plainTable } from "./report.js";

const smoke = process.argv.includes("--smoke");
const quick = process.argv.includes("--quick");
const started = Date.now();
const profile = process.argv.find((a) => a.startsWith("--cpu-prof="))?.slice("--cpu-prof=".length);
const result = await runBench({ ...(smoke ? smokeOptions : quick ? quickOptions : fullOptions), cpuProfileDir: profile, log: (l) => process.stderr.write(`${l}\n`) });
const dir = fileURLToPath(new URL("./results/", import.meta.url));
mkdirSync(dir, { recursive: true });
const stamp = result.startedAt.replaceAll(":", "-").replace(/\..*/, "");
writeFileSync(`${dir}${stamp}${smoke ? "-smoke" : quick ? "-quick" : ""}.json`, `${JSON.stringify(result, null, 2)}\n`);
if (!smoke && !quick) writeFileSync(`${dir}latest.md`, markdown(result));
process.stdout.write(`${plainTable(result)}\n\nbench took ${((Date.now() - started) / 1000).toFixed(0)} s; results in bench/results/${stamp}${smoke ? "-smoke" : quick ? "-quick" : ""}.json\n`);
process.exit(0);
