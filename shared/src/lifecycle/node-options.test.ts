import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { applyHeapGrowingPercent } from "./node-options.js";

const run = promisify(execFile);
const source = fileURLToPath(new URL("./node-options.ts", import.meta.url));

// A child process applies the setting, then allocates ~1.5 GB that dies young enough to be
// garbage but old enough (each of 20,000 slots is overwritten only after 20,000 newer arrays) to reach the old generation, and
// reports how many full collections V8 ran. The same allocations each time, so only the growing
// factor can change the count.
const child = (percent: number) => `
import { PerformanceObserver, constants } from "node:perf_hooks";
const { applyHeapGrowingPercent } = await import(${JSON.stringify(source)});
applyHeapGrowingPercent(${percent});
let majors = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
}).observe({ entryTypes: ["gc"] });
const keep = new Array(20_000);
for (let i = 0; i < 1_500_000; i++) keep[i % 20_000] = new Array(64).fill(i);
setTimeout(() => process.stdout.write(String(majors)), 50);
`;

async function fullCollections(percent: number): Promise<number> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "--max-semi-space-size=4", "--input-type=module", "-e", child(percent)], { timeout: 60_000 });
  return Number(stdout);
}

describe("applyHeapGrowingPercent", () => {
  it("changes how often V8 collects the old generation in a running process", async () => {
    const [eager, lazy] = await Promise.all([fullCollections(10), fullCollections(400)]);
    expect(lazy).toBeGreaterThan(0);
    // 1.1 × against 5 × what survived: 64 against 12 full collections on Node 20 here.
    expect(eager).toBeGreaterThan(2 * lazy);
  }, 90_000);

  it("refuses what is not a whole number of percent", () => {
    expect(() => applyHeapGrowingPercent(-1)).toThrow(RangeError);
    expect(() => applyHeapGrowingPercent(2.5)).toThrow(RangeError);
  });
});
