import autocannon from "autocannon";
import { randomBytes } from "node:crypto";
import { pacedLoad } from "./paced.js";
import { percentile } from "./stats.js";
import { registrationBody } from "./payload.js";

export interface LoadResult {
  seconds: number;
  /** Responses with status 201, the only ones counted as registrations. */
  created: number;
  createdPerSec: number;
  otherStatuses: Record<string, number>;
  errors: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/**
 * POSTs registrations with a unique email per request to `${url}/users` for `seconds`: as fast
 * as `connections` connections allow, or, with `rate`, evenly paced at that many requests/s.
 */
export async function loadRegistrations(opts: { url: string; seconds: number; connections: number; rate?: number; path?: string }): Promise<LoadResult> {
  return opts.rate ? pacedRegistrations({ ...opts, rate: opts.rate }) : saturate(opts);
}

async function saturate({ url, seconds, connections, rate, path = "/users" }: { url: string; seconds: number; connections: number; rate?: number; path?: string }): Promise<LoadResult> {
  const run = randomBytes(4).toString("hex");
  let i = 0;
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    ...(rate ? { overallRate: rate } : {}),
    requests: [
      {
        method: "POST",
        path,
        headers: { "content-type": "application/json" },
        setupRequest: (req: Record<string, unknown>) => ({ ...req, body: registrationBody(i++, run) }),
      },
    ],
  });
  const stats = result.statusCodeStats;
  const created = stats["201"]?.count ?? 0;
  const otherStatuses = Object.fromEntries(Object.entries(stats).filter(([k]) => k !== "201").map(([k, v]) => [k, v.count]));
  return {
    seconds: result.duration,
    created,
    createdPerSec: created / result.duration,
    otherStatuses,
    errors: result.errors + result.timeouts,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
  };
}

/**
 * Registrations at a steady rate (see pacedLoad). Not autocannon's `overallRate`: each
 * connection fires its per-second quota at once at every second boundary, which measures
 * 1,000-request bursts rather than 1,000 requests/s.
 */
async function pacedRegistrations({ url, seconds, connections, rate, path = "/users" }: { url: string; seconds: number; connections: number; rate: number; path?: string }): Promise<LoadResult> {
  const run = randomBytes(4).toString("hex");
  const r = await pacedLoad({ url, path, seconds, rate, connections, body: (i) => registrationBody(i, run) });
  const pct = (p: number) => Math.round(percentile(r.latenciesMs, p));
  const { "201": created = 0, ...otherStatuses } = r.statuses;
  return {
    seconds: r.seconds,
    created,
    createdPerSec: created / r.seconds,
    otherStatuses,
    errors: r.errors,
    latencyP50Ms: pct(50),
    latencyP99Ms: pct(99),
  };
}
