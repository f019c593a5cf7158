import { parseAllDocuments } from "yaml";
// @ts-expect-error plain ESM script without types
import { helmPath, kubectlPath } from "../../../scripts/deploy/helm.mjs";
import { repoPath, run } from "./repo.js";

export const CHART = repoPath("helm/orderflow");
/** The Kubernetes version the chart declares (kubeVersion) and the schemas validate against. */
export const KUBE_VERSION = "1.33.0";

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export const helm = (): string => helmPath();
export const kubectl = (): string => kubectlPath();

/** Parses a multi-document YAML stream into objects, skipping empty documents. */
export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(`invalid YAML: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null && typeof o === "object");
}

/** `helm template` with --set pairs (and optional values files); returns the objects. */
export async function template(sets: string[] = [], opts: { release?: string; valuesFiles?: string[]; namespace?: string } = {}) {
  const args = ["template", opts.release ?? "orderflow", CHART, "--kube-version", KUBE_VERSION, "--namespace", opts.namespace ?? "orderflow"];
  for (const f of opts.valuesFiles ?? []) args.push("-f", f);
  for (const s of sets) args.push("--set", s);
  const { stdout } = await run(helm(), args);
  return parseManifests(stdout);
}

/** Like template() but resolves to the error text, for values that must be rejected. */
export async function templateError(sets: string[]): Promise<string> {
  try {
    await template(sets);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`helm template ${sets.join(" ")} succeeded but should have failed`);
}

export const byKind = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
export const find = (objs: K8sObject[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in [${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(", ")}]`);
  return o;
};
