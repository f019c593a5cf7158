import autocannon from "autocannon";
import { randomBytes } from "node:crypto";
import { Agent, request } from "node:http";
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
 * Open-loop load at a steady rate: one request every 1/rate s, whatever the responses do
 * (latency counted from the scheduled send time, so queueing is not hidden). autocannon's
 * `overallRate` cannot do this: each connection fires its per-second quota at once at every
 * second boundary, which measures 1,000-request bursts rather than 1,000 requests/s.
 */
async function pacedRegistrations({ url, seconds, connections, rate, path = "/users" }: { url: string; seconds: number; connections: number; rate: number; path?: string }): Promise<LoadResult> {
  const run = randomBytes(4).toString("hex");
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  const otherStatuses: Record<string, number> = {};
  let created = 0;
  let errors = 0;
  const inFlight = new Set<Promise<void>>();
  const send = (i: number, scheduledAt: number) => {
    const body = registrationBody(i, run);
    const done = new Promise<void>((resolve) => {
      const req = request(`${url}${path}`, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on("end", () => {
          latencies.push(performance.now() - scheduledAt);
          if (res.statusCode === 201) created += 1;
          else otherStatuses[String(res.statusCode)] = (otherStatuses[String(res.statusCode)] ?? 0) + 1;
          resolve();
        });
      });
      req.on("error", () => {
        errors += 1;
        resolve();
      });
      req.end(body);
    });
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
  };
  const start = performance.now();
  const total = Math.round(rate * seconds);
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    // Send everything whose scheduled time has come, each stamped with that time.
    while (sent < total && start + (sent * 1000) / rate <= now) {
      send(sent, start + (sent * 1000) / rate);
      sent += 1;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inFlight);
  agent.destroy();
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0);
  return {
    seconds: elapsed,
    created,
    createdPerSec: created / elapsed,
    otherStatuses,
    errors,
    latencyP50Ms: pct(50),
    latencyP99Ms: pct(99),
  };
}
