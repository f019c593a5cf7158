import { readFileSync } from "node:fs";

/** Peak resident set (VmHWM) and CPU seconds (utime + stime) of a live process, from /proc. */
export interface ProcStats {
  peakRssMb: number;
  cpuSeconds: number;
}

const CLK_TCK = 100; // USER_HZ on Linux x86_64

export function readProcStats(pid: number): ProcStats | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return { peakRssMb: hwm ? Number(hwm[1]) / 1024 : NaN, cpuSeconds: (utime + stime) / CLK_TCK };
  } catch {
    return undefined;
  }
}
