/**
 * V8 heap settings every service process runs with; the image sets the same (Dockerfile,
 * checked by the deploy tests).
 *
 * Measured on the bench machine: V8's default 16 MB semi-spaces let a service reach 175 MB at
 * saturation; 4 MB ones, ~145-150 MB at the same throughput. Going lower costs latency: capping
 * the old generation (--max-old-space-size=256) or a smaller growing factor brings the peak to
 * ~100 MB, but the extra full collections cost ~10% throughput and raise the end-to-end p99 at
 * 1,000 registrations/s from ~21 to ~32 ms (re-measured with 768 and 1536: ~100 MB, and the
 * same price in tail latency). Measured again on 2026-11-27 in alternating full bench runs: 256
 * and 384 (the chart's memory limit) gave 94-98 MB but ~15 % less saturated throughput; 1536
 * gave ~100 MB at the same throughput and latency, but a ~13 % slower backlog drain, and it is
 * no limit at all in a 384 MiB container. A deployment that prefers the smaller heap sets
 * NODE_OPTIONS itself (the chart's `env`).
 */
export const SERVICE_NODE_OPTIONS = "--max-semi-space-size=4";
