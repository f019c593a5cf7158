import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot, startProcess } from "@orderflow/shared/testing";
import { runBench, smokeOptions } from "../../bench/bench.js";
import { markdown, rows } from "../../bench/report.js";

// Proves the harness runs end to end and yields every figure; asserts nothing about speed.
describe("npm run bench, a few seconds' worth", () => {
  it("measures the limits, the system under load, a backlog drain and the ratios", { timeout: 120_000 }, async () => {
    const r = await runBench(smokeOptions);
    const figures = {
      pgCommits: r.limits.postgres.commitsPerSec,
      pgCommitsAfter: r.limits.postgresAfter.commitsPerSec,
      pgCpuPerCommit: r.limits.postgres.cpuUsPerCommit,
      jsPublish: r.limits.jetstream.publishPerSec,
      jsConsume: r.limits.jetstream.consumeAckPerSec,
      jsCpuPerConsume: r.limits.jetstream.consumeAckCpuUs,
      httpCeiling: r.limits.http.requestsPerSec,
      roundTrip: r.limits.roundTrip.latencyUs,
      roundTripCpu: r.limits.roundTrip.cpuUs,
      accepted: r.system.saturation.http.createdPerSec,
      completed: r.system.saturation.e2e.completedPerSec,
      httpP99: r.system.saturation.http.latencyP99Ms,
      e2eP99: r.system.saturation.e2e.p99Ms,
      moderateE2eP99: r.system.moderate.e2e.p99Ms,
      drain: r.system.backlog.drainPerSec,
      relay: r.system.backlog.relayPublishPerSec,
      ready: r.system.backlog.readyMs,
      rssUser: r.system.services["user-service"]?.peakRssMb,
      cpuOrder: r.system.services["order-service (drain)"]?.cpuSeconds,
      ratioPg: r.ratios.systemOverPostgres,
      ratioDrain: r.ratios.drainOverConsumeAck,
    };
    for (const [name, value] of Object.entries(figures)) expect(Number.isFinite(value), `${name} = ${value}`).toBe(true);
    expect(r.system.saturation.e2e.complete).toBe(true);
    expect(r.system.backlog.complete).toBe(true);
    expect(r.targets).toHaveLength(7);
    expect(rows(r).length).toBeGreaterThan(20);
    expect(markdown(r)).toContain("| Target |");
  });
});

describe("npm run bench arguments", () => {
  // Each of these once started the full, minutes-long run and overwrote bench/results/latest.md.
  it.each([
    [["--smok"], {}, "bench: unknown argument --smok"],
    [["--cpu-prof", "dir"], {}, "bench: unknown argument --cpu-prof dir"],
    [["--smoke", "--quick"], {}, "bench: --smoke and --quick are two different runs; pick one"],
    [[], { npm_config_smoke: "true" }, "bench: --smoke went to npm (before `--`); put it after"],
  ])("%j refuses with exit 2 before measuring anything", async (args, env, message) => {
    const proc = startProcess(join(repoRoot, "bench", "run.ts"), args, env, { cwd: repoRoot, nodeArgs: ["--import", "tsx"] });
    expect((await proc.exitWithin(30_000)).code).toBe(2);
    expect(proc.output).toContain(message);
  });
});
