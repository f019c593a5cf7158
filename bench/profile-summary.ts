// Summarises a .cpuprofile by where the self time went: per package (or node internals, GC,
// idle) and the top functions. Usage: tsx bench/profile-summary.ts <file.cpuprofile>
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

export function bucketOf(url: string, fn: string): string {
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(idle)") return "idle";
  if (fn === "(program)") return "V8/native (program)";
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.includes("/shared/")) return "orderflow shared";
  if (url.includes("/services/")) return "orderflow service";
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  return url ? "other" : "node internals";
}

export function summarise(profile: Profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const buckets = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const b = bucketOf(n.callFrame.url, n.callFrame.functionName);
    buckets.set(b, (buckets.get(b) ?? 0) + us);
    if (b !== "idle") total += us;
    const f = `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/.*node_modules\//, "").replace(/.*\/work\/main\//, "")}:${n.callFrame.lineNumber}`;
    fns.set(f, (fns.get(f) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { busyMs: total / 1000, buckets: sorted(buckets).map(([k, v]) => [k, v / 1000] as const), top: sorted(fns).slice(0, 25).map(([k, v]) => [k, v / 1000] as const) };
}

if (process.argv[2]) {
  const s = summarise(JSON.parse(readFileSync(process.argv[2], "utf8")) as Profile);
  console.log(`busy ${s.busyMs.toFixed(0)} ms`);
  for (const [k, v] of s.buckets) console.log(`${v.toFixed(0).padStart(8)} ms  ${k === "idle" ? k : `${k} (${((v / s.busyMs) * 100).toFixed(1)}%)`}`);
  console.log("top functions:");
  for (const [k, v] of s.top) console.log(`${v.toFixed(0).padStart(8)} ms  ${k}`);
}
