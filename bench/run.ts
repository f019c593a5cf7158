// `npm run bench`: measures this machine's limits and the system side by side, prints a table,
// writes bench/results/<timestamp>.json and bench/results/latest.md. `--smoke` runs a few seconds.
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fullOptions, runBench, smokeOptions } from "./bench.js";
import { markdown, plainTable } from "./report.js";

const smoke = process.argv.includes("--smoke");
const started = Date.now();
const result = await runBench({ ...(smoke ? smokeOptions : fullOptions), log: (l) => process.stderr.write(`${l}\n`) });
const dir = fileURLToPath(new URL("./results/", import.meta.url));
mkdirSync(dir, { recursive: true });
const stamp = result.startedAt.replaceAll(":", "-").replace(/\..*/, "");
writeFileSync(`${dir}${stamp}${smoke ? "-smoke" : ""}.json`, `${JSON.stringify(result, null, 2)}\n`);
if (!smoke) writeFileSync(`${dir}latest.md`, markdown(result));
process.stdout.write(`${plainTable(result)}\n\nbench took ${((Date.now() - started) / 1000).toFixed(0)} s; results in bench/results/${stamp}${smoke ? "-smoke" : ""}.json\n`);
process.exit(0);
