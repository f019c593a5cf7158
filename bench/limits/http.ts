import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { loadRegistrations } from "../load.js";

export interface HttpLimit {
  requestsPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/** Requests/s of a Hono route that parses and returns the registration JSON, in its own process. */
export async function measureHttp({ seconds, connections }: { seconds: number; connections: number }): Promise<HttpLimit> {
  const script = fileURLToPath(new URL("./echo-server.mjs", import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const [chunk] = (await once(child.stdout!, "data")) as [Buffer];
    const port = Number(chunk.toString().trim());
    const r = await loadRegistrations({ url: `http://127.0.0.1:${port}`, seconds, connections });
    return { requestsPerSec: r.createdPerSec, latencyP50Ms: r.latencyP50Ms, latencyP99Ms: r.latencyP99Ms };
  } finally {
    child.kill("SIGKILL");
  }
}
