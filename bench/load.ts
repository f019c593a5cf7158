import autocannon from "autocannon";
import { randomBytes } from "node:crypto";
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
 * POSTs registrations with a unique email per request to `${url}/users` for `seconds`, at
 * `connections` connections, or at `rate` requests/s overall when given.
 */
export async function loadRegistrations({ url, seconds, connections, rate, path = "/users" }: { url: string; seconds: number; connections: number; rate?: number; path?: string }): Promise<LoadResult> {
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
