import type { K8sObject } from "./helm.js";

/**
 * Validates rendered objects against the Kubernetes 1.33 OpenAPI schemas compiled into the npm
 * package kubernetes-models@4.5.0 (Gateway API and Prometheus Operator from their
 * @kubernetes-models packages), strictly: like `kubectl apply --validate=strict`, a field the
 * schema does not know is an error too. The compiled validators read every known property, so a
 * Proxy records what they read and anything left unread is unknown.
 */
const modules: Record<string, () => Promise<Record<string, unknown>>> = {
  v1: () => import("kubernetes-models/v1"),
  "apps/v1": () => import("kubernetes-models/apps/v1"),
  "batch/v1": () => import("kubernetes-models/batch/v1"),
  "autoscaling/v2": () => import("kubernetes-models/autoscaling/v2"),
  "policy/v1": () => import("kubernetes-models/policy/v1"),
  "networking.k8s.io/v1": () => import("kubernetes-models/networking.k8s.io/v1"),
  "gateway.networking.k8s.io/v1": () => import("@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1"),
  "monitoring.coreos.com/v1": () => import("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1"),
};

type ModelCtor = new (data: unknown) => { validate(): void };

function tracked<T>(target: T, path: string, seen: Set<string>): T {
  if (target === null || typeof target !== "object") return target;
  return new Proxy(target as object, {
    get(t, k, r) {
      const v = Reflect.get(t, k, r);
      if (typeof k === "string" && Object.hasOwn(t, k)) {
        seen.add(`${path}/${k}`);
        return tracked(v, `${path}/${k}`, seen);
      }
      return v;
    },
  }) as T;
}

function unread(value: unknown, path: string, seen: Set<string>, out: string[]) {
  if (value === null || typeof value !== "object") return out;
  for (const [k, v] of Object.entries(value)) {
    const p = `${path}/${k}`;
    if (!seen.has(p)) out.push(p);
    else unread(v, p, seen, out);
  }
  return out;
}

/** Returns one message per problem; empty when every object is valid. */
export async function validateObjects(objs: K8sObject[]): Promise<string[]> {
  const problems: string[] = [];
  for (const obj of objs) {
    const id = `${obj.kind}/${obj.metadata?.name} (${obj.apiVersion})`;
    const load = modules[obj.apiVersion];
    if (!load) {
      problems.push(`${id}: no schema for apiVersion ${obj.apiVersion}`);
      continue;
    }
    const Model = (await load())[obj.kind] as ModelCtor | undefined;
    if (!Model) {
      problems.push(`${id}: kind ${obj.kind} does not exist in ${obj.apiVersion}`);
      continue;
    }
    const model = new Model(obj);
    const seen = new Set<string>();
    try {
      Object.getPrototypeOf(model).validate.call(tracked(model, "", seen));
    } catch (err) {
      problems.push(`${id}: ${(err as Error).message}`);
      continue;
    }
    for (const p of unread(model, "", seen, [])) problems.push(`${id}: unknown field ${p}`);
  }
  return problems;
}
