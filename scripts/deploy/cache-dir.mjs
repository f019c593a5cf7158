// Where deploy tooling keeps downloads between runs: outside the repo, so a fresh clone still hits it.
// ORDERFLOW_CACHE wins; root uses /var/cache/orderflow; anyone else ~/.cache/orderflow.
import { mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export function cacheDir(...parts) {
  const base =
    process.env.ORDERFLOW_CACHE ||
    (process.getuid?.() === 0 ? "/var/cache/orderflow" : join(homedir(), ".cache", "orderflow"));
  const dir = join(base, ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}
