import { spawn, type ChildProcess } from "node:child_process";
import { get as httpGet } from "node:http";
import { createConnection, createServer, type Server } from "node:net";
import type { K8sObject } from "./helm.js";
import type { ImageConfig } from "./image.js";
import { run } from "./repo.js";

/**
 * A kubelet stand-in: gives each pod its own network namespace (ip netns + veth, so every pod
 * has its own address and can listen on the rendered port), resolves the container's env the way
 * the kubelet does (ConfigMap/Secret refs, downward API, $(VAR)), and starts the container from
 * the image's root filesystem with chroot as the rendered uid, with a read-only root and a tmpfs
 * for the emptyDir at /tmp. NATS and Postgres on this machine listen on 127.0.0.1 only, so a
 * forwarder bound on the pod network's host address relays to them.
 */

export interface PodNetwork {
  ns: string;
  hostIp: string;
  podIp: string;
  destroy(): Promise<void>;
}

export async function createPodNetwork(ns: string, subnet: number): Promise<PodNetwork> {
  const hostIf = `${ns}h`.slice(-15);
  const podIf = `${ns}p`.slice(-15);
  const hostIp = `10.244.${subnet}.1`;
  const podIp = `10.244.${subnet}.2`;
  await run("ip", ["netns", "del", ns]).catch(() => undefined);
  await run("ip", ["link", "del", hostIf]).catch(() => undefined);
  await run("ip", ["netns", "add", ns]);
  await run("ip", ["link", "add", hostIf, "type", "veth", "peer", "name", podIf]);
  await run("ip", ["link", "set", podIf, "netns", ns]);
  await run("ip", ["addr", "add", `${hostIp}/30`, "dev", hostIf]);
  await run("ip", ["link", "set", hostIf, "up"]);
  await run("ip", ["-n", ns, "addr", "add", `${podIp}/30`, "dev", podIf]);
  await run("ip", ["-n", ns, "link", "set", podIf, "up"]);
  await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
  return {
    ns,
    hostIp,
    podIp,
    destroy: async () => {
      await run("ip", ["netns", "del", ns]).catch(() => undefined);
      await run("ip", ["link", "del", hostIf]).catch(() => undefined);
    },
  };
}

/** Relays host:port (on the pod network's host side) to a server on 127.0.0.1. */
export function forward(host: string, port: number, target: { host: string; port: number }): Promise<Server> {
  const server = createServer((client) => {
    const upstream = createConnection(target);
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
  };
}
export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  securityContext?: { runAsUser?: number; runAsGroup?: number; readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean };
  volumeMounts?: { name: string; mountPath: string }[];
}

function lookup(objs: K8sObject[], kind: string, name: string) {
  return objs.find((o) => o.kind === kind && o.metadata.name === name) as (K8sObject & { data?: Record<string, string>; stringData?: Record<string, string> }) | undefined;
}
function secretValue(objs: K8sObject[], name: string, key: string) {
  const s = lookup(objs, "Secret", name);
  if (!s) return undefined;
  if (s.stringData?.[key] !== undefined) return s.stringData[key];
  return s.data?.[key] !== undefined ? Buffer.from(s.data[key]!, "base64").toString("utf8") : undefined;
}

/** The container's environment as the kubelet builds it: image env, envFrom, then env in order. */
export function resolveEnv(c: ContainerSpec, image: ImageConfig, objs: K8sObject[], pod: { name: string; namespace: string }) {
  const env: Record<string, string> = {};
  for (const kv of image.Env ?? []) {
    const i = kv.indexOf("=");
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const cm = lookup(objs, "ConfigMap", from.configMapRef.name);
      if (!cm) throw new Error(`ConfigMap ${from.configMapRef.name} not rendered`);
      Object.assign(env, cm.data);
    }
    if (from.secretRef) {
      const s = lookup(objs, "Secret", from.secretRef.name);
      if (!s) throw new Error(`Secret ${from.secretRef.name} not rendered`);
      for (const k of Object.keys({ ...s.data, ...s.stringData })) env[k] = secretValue(objs, s.metadata.name, k)!;
    }
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
    } else if (e.valueFrom?.fieldRef) {
      const fields: Record<string, string> = { "metadata.name": pod.name, "metadata.namespace": pod.namespace };
      const v = fields[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined) throw new Error(`fieldRef ${e.valueFrom.fieldRef.fieldPath} not emulated`);
      env[e.name] = v;
    } else if (e.valueFrom?.secretKeyRef) {
      const { name, key, optional } = e.valueFrom.secretKeyRef;
      const v = secretValue(objs, name, key);
      if (v === undefined && !optional) throw new Error(`Secret ${name} key ${key} not rendered (and not optional)`);
      if (v !== undefined) env[e.name] = v;
    } else if (e.valueFrom?.configMapKeyRef) {
      const { name, key, optional } = e.valueFrom.configMapKeyRef;
      const v = lookup(objs, "ConfigMap", name)?.data?.[key];
      if (v === undefined && !optional) throw new Error(`ConfigMap ${name} key ${key} not rendered`);
      if (v !== undefined) env[e.name] = v;
    }
  }
  return env;
}

/** command overrides the image's ENTRYPOINT (and drops its CMD); args override CMD. */
export function resolveArgv(c: ContainerSpec, image: ImageConfig) {
  if (c.command) return [...c.command, ...(c.args ?? [])];
  return [...(image.Entrypoint ?? []), ...(c.args ?? image.Cmd ?? [])];
}

export interface StartedContainer {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/**
 * Starts argv in the pod's network namespace, in a private mount namespace whose root is the
 * image's mounted filesystem (read-only when the securityContext says so, /proc, /dev, and a tmpfs
 * at each emptyDir mount), as uid:gid. Every step execs, so the returned pid is the container's
 * main process and a signal sent to it is what the kubelet's runtime would send.
 */
export function startContainer(opts: {
  ns: string;
  root: string;
  argv: string[];
  env: Record<string, string>;
  workdir: string;
  uid: number;
  gid: number;
  readOnlyRoot: boolean;
  tmpfs: string[];
}): StartedContainer {
  const script = [
    'root="$1"; wd="$2"; user="$3"; ro="$4"; shift 4',
    'mount --bind "$root" "$root"',
    'mount -t proc proc "$root/proc"',
    'mount --rbind /dev "$root/dev"',
    ...opts.tmpfs.map((p) => `mkdir -p "$root${p}" 2>/dev/null || true; mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev tmpfs "$root${p}"`),
    'if [ "$ro" = true ]; then mount -o remount,bind,ro "$root"; fi',
    'exec chroot --userspec="$user" "$root" /usr/bin/env -i -C "$wd" "$@"',
  ].join("\n");
  const envArgs = Object.entries(opts.env).map(([k, v]) => `${k}=${v}`);
  const proc = spawn(
    "ip",
    ["netns", "exec", opts.ns, "unshare", "--mount", "--propagation", "private", "sh", "-ec", script, "pod",
      opts.root, opts.workdir, `${opts.uid}:${opts.gid}`, String(opts.readOnlyRoot), ...envArgs, ...opts.argv],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  const keep = (b: Buffer) => {
    out = (out + b.toString("utf8")).slice(-200_000);
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    proc.on("exit", (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  return { proc, output: () => out, exited };
}

/**
 * One HTTP GET as a kubelet probe does it: a fresh connection with `Connection: close` (the
 * kubelet disables keep-alive for probes), success is a status in [200, 400), 0 = no answer.
 */
export function probe(url: string, timeoutSeconds: number): Promise<number> {
  return new Promise((resolve) => {
    const req = httpGet(url, { agent: false, headers: { connection: "close", "user-agent": "kube-probe/1.33" }, timeout: timeoutSeconds * 1000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", () => resolve(0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}
