import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU seconds spent so far by the processes that share this machine's two cores during a run:
 * the Postgres server (live backends plus what the postmaster reaped from exited ones), the
 * nats-server, and any pids given (services, the load generator). Read-only /proc access.
 */
export interface CpuSnapshot {
  [who: string]: number;
}

const CLK_TCK = 100;

function statOf(pid: number | string): { comm: string; ppid: number; self: number; children: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { comm, ppid: Number(f[1]), self: (Number(f[11]) + Number(f[12])) / CLK_TCK, children: (Number(f[13]) + Number(f[14])) / CLK_TCK };
  } catch {
    return undefined;
  }
}

export function cpuSnapshot(pids: Record<string, number | undefined>): CpuSnapshot {
  const out: CpuSnapshot = { postgres: 0, "nats-server": 0 };
  const all = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  const postgresPids = new Set<number>();
  const stats = new Map<number, NonNullable<ReturnType<typeof statOf>>>();
  for (const d of all) {
    const s = statOf(d);
    if (!s) continue;
    stats.set(Number(d), s);
    if (s.comm === "postgres") postgresPids.add(Number(d));
    if (s.comm === "nats-server") out["nats-server"]! += s.self;
  }
  for (const pid of postgresPids) {
    const s = stats.get(pid)!;
    out.postgres! += s.self;
    if (!postgresPids.has(s.ppid)) out.postgres! += s.children; // the postmaster: exited backends
  }
  for (const [who, pid] of Object.entries(pids)) {
    const s = pid === undefined ? undefined : statOf(pid);
    if (s) out[who] = s.self;
  }
  // Whatever else kept the cores busy (other work on a shared machine): total busy time minus the above.
  const known = Object.values(out).reduce((a, b) => a + b, 0);
  out[OTHER] = machineBusySeconds() - known;
  return out;
}

const OTHER = "everything else";

/** CPU seconds every core of the machine has been busy since boot (/proc/stat), whoever ran. */
export function machineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!; // cpu user nice system idle iowait irq softirq steal
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // Not steal: time the hypervisor gave another guest is not this machine's work.
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]!;
  return busy / CLK_TCK;
}

export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): CpuSnapshot {
  const out: CpuSnapshot = {};
  for (const [k, v] of Object.entries(after)) out[k] = Math.max(0, v - (before[k] ?? 0));
  return out;
}
