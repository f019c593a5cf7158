import type { BenchResult } from "./bench.js";

const n0 = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "—");
const n1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : "—");
const n2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "—");

/** Rows of the one side-by-side table: what, figure, note. */
export function rows(r: BenchResult): [string, string, string][] {
  const { postgres: pg, jetstream: js, http, roundTrip: rt, postgresAfter: pgAfter } = r.limits;
  const { saturation: sat, moderate: mod, backlog: bl, services } = r.system;
  // CPU seconds by process, largest first; per event, "everything else" is left out: it is the
  // rest of the machine, not a cost of the registrations.
  const byProcess = (c: Record<string, number>, show: (seconds: number) => string, others = true) =>
    Object.entries(c)
      .filter(([k, v]) => v >= 0.05 && (others || k !== "everything else"))
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${show(v)}`)
      .join(", ");
  const cpu = (c: Record<string, number>) => byProcess(c, (v) => v.toFixed(1));
  const perEvent = (c: Record<string, number>, events: number) => byProcess(c, (v) => n0((v * 1e6) / events), false);
  const total = (c: Record<string, number>, events: number) =>
    n0((Object.entries(c).filter(([k]) => k !== "everything else").reduce((sum, [, v]) => sum + v, 0) * 1e6) / events);
  const proc = (name: string) => services[name];
  return [
    ["**Limits of this machine**", "", ""],
    ["Postgres single-row insert commits/s", n0(pg.commitsPerSec), `${pg.tool}, ${pg.clients} clients; ${n0(pg.cpuUsPerCommit)} µs of CPU per commit, ${n2(pg.coresBusy)} cores busy; ${n0(pgAfter.commitsPerSec)} when measured again after the system phases (the ratio uses the first)`],
    ["JetStream publish/s (Nats-Msg-Id, file stream)", n0(js.publishPerSec), `${js.window} in flight, ${js.payloadBytes} B payload`],
    ["JetStream consume+ack/s (durable pull)", n0(js.consumeAckPerSec), `${n0(js.messages)} messages; ${n0(js.consumeAckCpuUs)} µs of CPU per message`],
    ["HTTP ceiling: Hono JSON echo req/s", n0(http.requestsPerSec), `p50 ${n1(http.latencyP50Ms)} ms, p99 ${n1(http.latencyP99Ms)} ms, ${r.options.connections} connections`],
    ["round trip between two processes (loopback TCP)", `${n1(rt.latencyUs)} µs`, `${n1(rt.cpuUs)} µs CPU of both per round trip; ${n0(rt.roundTrips)} one-byte ping-pongs`],
    ["**System, saturated**", "", `${r.options.saturationSeconds} s, ${r.options.connections} connections`],
    ["registrations accepted/s (201s only)", n0(sat.http.createdPerSec), `${n0(sat.http.created)} × 201; other: ${JSON.stringify(sat.http.otherStatuses)}, errors ${sat.http.errors}`],
    ["registrations completed/s end-to-end", n0(sat.e2e.completedPerSec), `load start → last orderCount 1; complete: ${sat.e2e.complete}`],
    ["HTTP latency p50 / p99", `${n1(sat.http.latencyP50Ms)} / ${n1(sat.http.latencyP99Ms)} ms`, ""],
    ["user commit → welcome order commit p50 / p99", `${n1(sat.e2e.p50Ms)} / ${n1(sat.e2e.p99Ms)} ms`, `max ${n1(sat.e2e.maxMs)} ms`],
    ["caught up after load ended", `${n0(sat.e2e.catchUpMs)} ms`, "every welcome order applied, orderCount 1"],
    ["CPU seconds by process", "", cpu(sat.cpuSeconds)],
    ["CPU µs per registration", total(sat.cpuSeconds, sat.http.created), perEvent(sat.cpuSeconds, sat.http.created)],
    ["**System, fixed rate**", "", `${r.options.moderateRate}/s for ${r.options.moderateSeconds} s`],
    ["registrations accepted/s", n0(mod.http.createdPerSec), `${n0(mod.http.created)} × 201`],
    ["HTTP latency p50 / p99", `${n1(mod.http.latencyP50Ms)} / ${n1(mod.http.latencyP99Ms)} ms`, ""],
    ["user commit → welcome order commit p50 / p99", `${n1(mod.e2e.p50Ms)} / ${n1(mod.e2e.p99Ms)} ms`, `max ${n1(mod.e2e.maxMs)} ms`],
    ["caught up after load ended", `${n0(mod.e2e.catchUpMs)} ms`, ""],
    // Unbatched, every stage is its own hop: compare with the saturated row and the round trip.
    ["CPU µs per registration", total(mod.cpuSeconds, mod.http.created), perEvent(mod.cpuSeconds, mod.http.created)],
    ["**Backlog drain**", "", `${n0(bl.users)} registrations queued while order-service was stopped`],
    ["relay publish/s (outbox → JetStream)", n0(bl.relayPublishPerSec), "user-service's relay, backlog in the outbox"],
    ["welcome orders applied/s", n0(bl.drainPerSec), `first → last commit; spawn → empty ${n0(bl.drainWallMs)} ms; complete: ${bl.complete}`],
    ["full loop (orderCount 1 for all)", `${n0(bl.loopWallMs)} ms`, "order-service spawn → last orders.created applied"],
    ["CPU seconds by process", "", cpu(bl.cpuSeconds)],
    ["CPU µs per drained event", total(bl.cpuSeconds, bl.users), perEvent(bl.cpuSeconds, bl.users)],
    ["**Service processes**", "", ""],
    ["ready after spawn: user / order / order with backlog", `${n0(r.system.readyMs["user-service"])} / ${n0(r.system.readyMs["order-service"])} / ${n0(bl.readyMs)} ms`, "first two include migrations on a fresh database"],
    ...Object.keys(services).map((name): [string, string, string] => [`${name}: peak RSS / CPU s`, `${n0(proc(name)?.peakRssMb ?? NaN)} MB / ${n1(proc(name)?.cpuSeconds ?? NaN)} s`, "VmHWM, utime+stime over the process's life"]),
    ["**Ratios**", "", ""],
    ["registrations completed/s ÷ Postgres commits/s", n2(r.ratios.systemOverPostgres), "target ≥ 0.35"],
    ["backlog drain/s ÷ JetStream consume+ack/s", n2(r.ratios.drainOverConsumeAck), "target ≥ 0.30"],
  ];
}

export function markdown(r: BenchResult): string {
  const m = r.machine;
  const lines = [
    `Run ${r.startedAt} at commit ${m.commit} on ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}, PostgreSQL ${m.postgres}, ${m.nats}.`,
    "",
    "| Measure | Result | Notes |",
    "|---|---:|---|",
    ...rows(r).map(([a, b, c]) => `| ${a} | ${b} | ${c} |`),
    "",
    "| Target | Wanted | Measured | Met |",
    "|---|---|---|---|",
    ...r.targets.map((t) => `| ${t.name} | ${t.target} | ${t.actual} | ${t.met ? "yes" : "**no**"} |`),
    "",
  ];
  return lines.join("\n");
}

export function plainTable(r: BenchResult): string {
  const all = rows(r);
  const w0 = Math.max(...all.map((x) => x[0].length));
  const w1 = Math.max(...all.map((x) => x[1].length));
  const out = all.map(([a, b, c]) => `${a.replaceAll("**", "").padEnd(w0)}  ${b.padStart(w1)}  ${c}`);
  out.push("", ...r.targets.map((t) => `${t.met ? "MET " : "MISS"}  ${t.name}: ${t.actual} (target ${t.target})`));
  return out.join("\n");
}
