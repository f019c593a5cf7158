import { setFlagsFromString } from "node:v8";

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
 * NODE_OPTIONS itself (the chart's `env`). The growing factor is set separately, at start-up
 * (see applyHeapGrowingPercent).
 */
export const SERVICE_NODE_OPTIONS = "--max-semi-space-size=4";

/**
 * The services' default for HEAP_GROWING_PERCENT: after a full collection V8 lets the old
 * generation grow to 2.5 × what survived before the next one.
 *
 * What V8 picks by itself (up to 4 ×, from its own estimate of GC and allocation speed) is why a
 * service peaked at 142-152 MB under load with only ~20 MB of live heap (a forced collection
 * during the bench's saturated phase leaves 17-20 MB): the rest is garbage from request and
 * batch buffers that lived through a database round trip and so reached the old generation.
 * Eight alternating pairs of `npm run bench -- --quick` runs on 2026-11-27: peak RSS 119-124 MB
 * with 150 against 142-152 MB without, at the same throughput and latency (medians: completed
 * registrations/s 2,059 against 2,030, CPU per registration 879 against 887 µs; the two slow
 * runs with 150 were the host's, Postgres and nats-server slowed as much). 50 (1.5 ×) gave
 * 98-102 MB but cost ~18 % of the saturated throughput.
 */
export const DEFAULT_HEAP_GROWING_PERCENT = 150;

/**
 * Sets V8's old-generation growing factor to 1 + percent/100 for the rest of the process's life;
 * 0 leaves V8 its own heuristic. It is a V8 flag that NODE_OPTIONS does not accept, and V8 reads
 * it at every full collection, so setting it once the process runs takes effect from the next
 * one (checked on Node 20 and 24).
 */
export function applyHeapGrowingPercent(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0) throw new RangeError(`heap growing percent must be a whole number ≥ 0, got ${percent}`);
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}
