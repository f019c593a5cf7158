import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CHART, find, template } from "./support/helm.js";
import { repoPath } from "./support/repo.js";
import { SERVICES } from "./support/services.js";

interface Artifact {
  image: string;
  context: string;
  docker: { dockerfile: string; target: string; buildArgs: Record<string, string> };
  sync?: { manual: { src: string; dest: string }[] };
}
interface Release {
  name: string;
  chartPath: string;
  valuesFiles?: string[];
  setValueTemplates?: Record<string, string>;
  setValues?: Record<string, unknown>;
}
interface Section {
  build: { local?: { push?: boolean; useBuildkit?: boolean }; artifacts: Artifact[] };
  deploy: { helm: { releases: Release[] } };
}
interface SkaffoldConfig extends Section {
  apiVersion: string;
  portForward: { resourceType: string; resourceName: string; port: number; localPort: number }[];
  profiles: (Partial<Section> & { name: string; activation?: { command?: string }[] })[];
}

const config = parse(readFileSync(repoPath("skaffold.yaml"), "utf8")) as SkaffoldConfig;
const dockerfile = readFileSync(repoPath("Dockerfile"), "utf8");
const stages = [...dockerfile.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gim)].map((m) => m[1]);
const sections: [string, Section][] = [
  ["default", config],
  ...config.profiles.map((p) => [`profile ${p.name}`, { build: p.build ?? config.build, deploy: p.deploy ?? config.deploy }] as [string, Section]),
];
/** Skaffold's template key for an image: "/", "-" and "." become "_". */
const templateKey = (image: string) => image.replace(/[/.-]/g, "_");

describe("skaffold.yaml", () => {
  it("uses the current schema (skaffold/v4beta14, Skaffold v2.19+)", () => {
    expect(config.apiVersion).toBe("skaffold/v4beta14");
  });

  it("has a dev profile that skaffold dev activates and a prod profile", () => {
    const dev = config.profiles.find((p) => p.name === "dev");
    expect(dev?.activation).toContainEqual({ command: "dev" });
    expect(config.profiles.map((p) => p.name)).toContain("prod");
  });

  it.each(sections)("%s: every artifact builds a real service from the one Dockerfile and an existing target", (_name, s) => {
    // One artifact per service in the chart's `services:` map.
    expect(s.build.artifacts.map((a) => a.image).sort()).toEqual(SERVICES.map((n) => `orderflow/${n}`).sort());
    for (const a of s.build.artifacts) {
      expect(a.docker.dockerfile).toBe("Dockerfile");
      expect(existsSync(repoPath(`${a.context}/${a.docker.dockerfile}`))).toBe(true);
      expect(stages).toContain(a.docker.target);
      const svc = a.docker.buildArgs.SERVICE!;
      expect(a.image).toBe(`orderflow/${svc}`);
      expect(existsSync(repoPath(`services/${svc}/package.json`)), `services/${svc}`).toBe(true);
      for (const rule of a.sync?.manual ?? []) {
        // The synced sources exist in the repo, and the dev target copies them to dest.
        const base = rule.src.split("/**")[0]!;
        expect(existsSync(repoPath(base)), rule.src).toBe(true);
        expect(rule.dest).toBe("/app");
        expect(dockerfile).toMatch(new RegExp(`COPY --chown=node:node ${base.split("/")[0]}/ ${base.split("/")[0]}/`));
      }
    }
  });

  it.each(sections)("%s: builds with BuildKit, which the Dockerfile's RUN --mount=type=secret needs", (_name, s) => {
    expect(dockerfile).toMatch(/^RUN --mount=type=secret/m);
    // A profile's build.local replaces the base's whole, so each profile that builds says it again.
    expect(s.build.local?.useBuildkit).toBe(true);
  });

  it.each(sections)("%s: pushes to a remote cluster's registry (--default-repo), not only to a local cluster", (name, s) => {
    // An explicit `push: false` turns off Skaffold's own choice (push unless the context is a local
    // cluster): against a remote cluster the pods would then pull images nobody pushed.
    expect(s.build.local?.push, name).toBe(name === "profile prod" ? true : undefined);
  });

  it("the dev profile syncs sources into the dev target (tsx watch), the others build runtime", () => {
    const dev = sections.find(([n]) => n === "profile dev")![1];
    expect(dev.build.artifacts.every((a) => a.docker.target === "dev" && (a.sync?.manual.length ?? 0) > 0)).toBe(true);
    expect(dockerfile).toMatch(/tsx watch/);
    for (const [n, s] of sections.filter(([n]) => n !== "profile dev")) {
      expect(s.build.artifacts.every((a) => a.docker.target === "runtime"), n).toBe(true);
    }
  });

  it.each(sections)("%s: the helm release names the chart, existing values files and real chart values wired to the right image", async (_name, s) => {
    expect(s.deploy.helm.releases).not.toHaveLength(0);
    expect(s.build.artifacts).not.toHaveLength(0);
    for (const r of s.deploy.helm.releases) {
      expect(repoPath(r.chartPath).replace(/\/$/, "")).toBe(CHART.replace(/\/$/, ""));
      for (const f of r.valuesFiles ?? []) expect(existsSync(repoPath(f)), f).toBe(true);
      const tpl = r.setValueTemplates ?? {};
      for (const a of s.build.artifacts) {
        const svc = a.docker.buildArgs.SERVICE!;
        const k = templateKey(a.image);
        expect(tpl[`services.${svc}.image.repository`], `setValueTemplates: services.${svc}.image.repository`).toBe(`{{.IMAGE_REPO_${k}}}`);
        expect(tpl[`services.${svc}.image.tag`], `setValueTemplates: services.${svc}.image.tag`).toBe(`{{.IMAGE_TAG_${k}}}@{{.IMAGE_DIGEST_${k}}}`);
      }
      // Render the chart the way skaffold would (templates filled in) and check the images land.
      const sets = Object.entries(tpl).map(([key, v]) => {
        const m = /^services\.([^.]+)\.image\.(repository|tag)$/.exec(key);
        expect(m, `${key} is a chart value`).not.toBeNull();
        return `${key}=${m![2] === "repository" ? `registry.test/${m![1]}` : `abc@sha256:${"0".repeat(64)}`}`;
      });
      for (const [key, v] of Object.entries(r.setValues ?? {})) sets.push(`${key}=${v}`);
      const objs = await template(sets, { release: r.name, valuesFiles: (r.valuesFiles ?? []).map(repoPath) });
      for (const a of s.build.artifacts) {
        const svc = a.docker.buildArgs.SERVICE!;
        const d = find(objs, "Deployment", `${r.name}-${svc}`) as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } };
        expect(d.spec.template.spec.containers[0]!.image).toBe(`registry.test/${svc}:abc@sha256:${"0".repeat(64)}`);
      }
    }
  });

  it("port-forwards every service to a resource and port the chart renders", async () => {
    const objs = await template([]);
    expect(config.portForward.map((p) => p.resourceName).sort()).toEqual(SERVICES.map((n) => `orderflow-${n}`).sort());
    expect(config.portForward).not.toHaveLength(0);
    for (const pf of config.portForward) {
      expect(pf.resourceType).toBe("service");
      const svc = find(objs, "Service", pf.resourceName) as unknown as { spec: { ports: { port: number }[] } };
      expect(svc.spec.ports.map((p) => p.port)).toContain(pf.port);
    }
    expect(new Set(config.portForward.map((p) => p.localPort)).size).toBe(config.portForward.length);
  });
});
