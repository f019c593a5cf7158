import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { kubectl, parseManifests, template } from "./support/helm.js";
import { repoPath, run } from "./support/repo.js";
import { SERVICES } from "./support/services.js";
import { validateObjects } from "./support/validate.js";

const key = (o: { kind: string; metadata: { name: string } }) => `${o.kind}/${o.metadata.name}`;

describe("k8s/ (kubectl apply -k)", () => {
  it("is what `npm run k8s:render` generates from the chart today", async () => {
    // Fails when the chart changed and nobody re-ran the render (or someone edited k8s/ by hand).
    await run("node", ["scripts/deploy/render-k8s.mjs", "--check"]);
  });

  it("runs when started through a symlinked checkout or a path with a space, instead of silently doing nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "of render "));
    try {
      symlinkSync(repoPath("."), join(dir, "checkout"));
      // Reaching the argument check proves main() ran.
      await expect(run("node", [join(dir, "checkout", "scripts", "deploy", "render-k8s.mjs"), "--chek"])).rejects.toThrow(/failed \(2\): k8s:render: unknown argument --chek/);
      await run("node", [join(dir, "checkout", "scripts", "deploy", "render-k8s.mjs"), "--check"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses, writing nothing, a values.yaml it cannot parse or a HELM_BIN that prints no manifests", async () => {
    // A copy of what the script reads, so the checkout's chart and k8s/ stay untouched.
    const dir = mkdtempSync(join(tmpdir(), "of-render-"));
    try {
      cpSync(repoPath("scripts/deploy"), join(dir, "scripts", "deploy"), { recursive: true });
      cpSync(repoPath("helm/orderflow"), join(dir, "helm", "orderflow"), { recursive: true });
      symlinkSync(repoPath("node_modules"), join(dir, "node_modules"));
      const script = join(dir, "scripts", "deploy", "render-k8s.mjs");
      const empty = join(dir, "helm-that-prints-nothing");
      writeFileSync(empty, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      await expect(run("node", [script], { env: { ...process.env, HELM_BIN: empty } })).rejects.toThrow(
        /failed \(1\): k8s:render: \S+ template orderflow printed no manifests; is HELM_BIN helm\? nothing written\n$/,
      );
      writeFileSync(join(dir, "helm", "orderflow", "values.yaml"), "services:\n  user-service: [unclosed\n");
      const broken = run("node", [script]);
      await expect(broken).rejects.toThrow(/failed \(1\): k8s:render: helm\/orderflow\/values.yaml: /);
      await expect(broken).rejects.not.toThrow(/^\s+at /m);
      expect(existsSync(join(dir, "k8s"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(["k8s", "k8s/prod"])("kustomize build %s yields valid objects matching the chart", async (dir) => {
    const { stdout } = await run(kubectl(), ["kustomize", repoPath(dir)]);
    const objs = parseManifests(stdout);
    expect(await validateObjects(objs)).toEqual([]);
    const fromFile = parseManifests(readFileSync(repoPath(dir === "k8s" ? "k8s/base/orderflow.yaml" : "k8s/prod/orderflow.yaml"), "utf8"));
    expect(objs.map(key).sort()).toEqual(fromFile.map(key).sort());
  });

  it("k8s/ is the whole dev system: every service, migrations, NATS and Postgres", async () => {
    const objs = parseManifests((await run(kubectl(), ["kustomize", repoPath("k8s")])).stdout).map(key);
    expect(objs).toEqual(
      expect.arrayContaining([
        "Deployment/orderflow-user-service",
        "Deployment/orderflow-order-service",
        "Deployment/orderflow-event-log",
        "StatefulSet/orderflow-nats",
        "StatefulSet/orderflow-postgres",
        "Ingress/orderflow",
      ]),
    );
    expect(objs.filter((k) => k.startsWith("Job/"))).toHaveLength(SERVICES.length);
    // Same object set as a plain `helm template` of the defaults.
    const chart = (await template(["postgres.auth.password=orderflow-dev-only"])).map(key);
    expect(objs.sort()).toEqual(chart.sort());
  });

  it("k8s/prod's migration Jobs are plain: kubectl has no hooks, and a hook's TTL would make every later apply migrate again", async () => {
    const jobs = parseManifests(readFileSync(repoPath("k8s/prod/orderflow.yaml"), "utf8")).filter((o) => o.kind === "Job");
    expect(jobs).toHaveLength(SERVICES.length);
    for (const job of jobs) {
      expect(job.metadata.annotations ?? {}, job.metadata.name).not.toHaveProperty(["helm.sh/hook"]);
      expect(job.spec, job.metadata.name).not.toHaveProperty("ttlSecondsAfterFinished");
    }
  });

  it("k8s/prod lets the services reach the in-cluster NATS by namespace, not by an ipBlock pod IPs may not match", async () => {
    type Rule = { to: Record<string, unknown>[]; ports: { port: number }[] };
    const policies = parseManifests(readFileSync(repoPath("k8s/prod/orderflow.yaml"), "utf8")).filter((o) => o.kind === "NetworkPolicy");
    const natsRules = policies.flatMap((p) => ((p.spec as { egress?: Rule[] }).egress ?? []).filter((r) => r.ports?.some((x) => x.port === 4222)));
    expect(natsRules.length).toBeGreaterThan(0);
    for (const r of natsRules) expect(r.to).toEqual([{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "nats" } } }]);
  });
});
