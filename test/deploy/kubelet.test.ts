import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { Server } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { SERVICE_NODE_OPTIONS } from "@orderflow/shared";
import { waitFor } from "@orderflow/shared/testing";
import { byKind, template, type K8sObject } from "./support/helm.js";
import { buildImage, ensureBaseImage, imageConfig, imageSize, mountImage, type ImageConfig } from "./support/image.js";
import {
  createPodNetwork,
  forward,
  probe,
  resolveArgv,
  resolveEnv,
  startContainer,
  type ContainerSpec,
  type PodNetwork,
  type StartedContainer,
} from "./support/pod.js";
import { repoPath, run } from "./support/repo.js";
import { DATABASES, SERVICES } from "./support/services.js";

/**
 * Builds both images with buildah from the real Dockerfile (on the stand-in base image), then
 * runs every Deployment of the rendered chart the way a kubelet would — see support/pod.ts.
 * Needs root (ip netns, mount, chroot); CI runs as root. Only the NATS and Postgres addresses
 * are replaced by this machine's, plus a unique database name and NATS_NAMESPACE so the run
 * cannot touch anyone else's data on the shared servers.
 */
// SERVICES: every service in the chart; user-service and order-service carry the registration flow.
const isRoot = process.getuid?.() === 0;
const run_id = randomBytes(3).toString("hex");
const NATS_NAMESPACE = `k8s_${run_id}`;
const DB_PREFIX = `of_k8s_${run_id}`;
const imageRef = (svc: string) => `localhost/orderflow/${svc}:0.1.0`;

type PodTemplate = { metadata: { labels: Record<string, string> }; spec: PodSpec };
type PodSpec = {
  containers: (ContainerSpec & Probes & { lifecycle?: { preStop?: { sleep?: { seconds: number } } } })[];
  securityContext?: { runAsUser?: number; runAsGroup?: number; runAsNonRoot?: boolean };
  terminationGracePeriodSeconds?: number;
  volumes?: { name: string; emptyDir?: unknown }[];
};
type HttpProbe = { httpGet: { path: string; port: string | number }; periodSeconds: number; timeoutSeconds: number; failureThreshold: number };
type Probes = { startupProbe: HttpProbe; livenessProbe: HttpProbe; readinessProbe: HttpProbe };
const podTemplate = (o: K8sObject) => (o.spec as { template: PodTemplate }).template;

const images = new Map<string, ImageConfig>();
const cleanups: (() => Promise<unknown>)[] = [];
const containers = new Map<string, StartedContainer>();
let objs: K8sObject[] = [];
let subnet = 20 + (parseInt(run_id, 16) % 200);

function dumpOnFailure() {
  onTestFailed(() => {
    for (const [name, c] of containers) console.log(`----- ${name} output (tail) -----\n${c.output().slice(-6000)}`);
  });
}

async function newPodNetwork(): Promise<PodNetwork & { forwarders: Server[] }> {
  const net = await createPodNetwork(`of${run_id}${subnet % 100}`, subnet++);
  // NATS and Postgres here listen on 127.0.0.1; the pod reaches them at its gateway address.
  const forwarders = [
    await forward(net.hostIp, 5432, { host: "127.0.0.1", port: 5432 }),
    await forward(net.hostIp, 4222, { host: "127.0.0.1", port: 4222 }),
  ];
  cleanups.push(async () => {
    for (const f of forwarders) await new Promise((r) => f.close(r));
    await net.destroy();
  });
  return { ...net, forwarders };
}

/** The env the kubelet would give the container, with only the NATS/DB addresses swapped. */
function podEnv(c: ContainerSpec, image: ImageConfig, podName: string, net: PodNetwork, swap = true) {
  const env = resolveEnv(c, image, objs, { name: podName, namespace: "orderflow" });
  if (!swap) return env;
  if (env.DATABASE_URL) {
    const db = new URL(env.DATABASE_URL).pathname.slice(1);
    env.DATABASE_URL = `postgres://postgres@${net.hostIp}:5432/${DB_PREFIX}_${db}`;
  }
  if (env.NATS_URL !== undefined) {
    env.NATS_URL = `nats://${net.hostIp}:4222`;
    env.NATS_NAMESPACE = NATS_NAMESPACE;
    delete env.NATS_USER;
    delete env.NATS_PASSWORD;
    delete env.NATS_TOKEN;
  }
  return env;
}

async function launch(name: string, c: ContainerSpec, spec: PodSpec, net: PodNetwork, ref: string, swapAddresses = true) {
  const image = images.get(ref)!;
  const rootfs = await mountImage(ref, `of-${run_id}-${name}`.slice(0, 60));
  cleanups.push(rootfs.remove);
  const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser ?? 0;
  const gid = c.securityContext?.runAsGroup ?? spec.securityContext?.runAsGroup ?? 0;
  if ((c.securityContext?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot) && uid === 0) throw new Error(`${name}: runAsNonRoot with uid 0`);
  const emptyDirs = new Set((spec.volumes ?? []).filter((v) => v.emptyDir).map((v) => v.name));
  const started = startContainer({
    ns: net.ns,
    root: rootfs.root,
    argv: resolveArgv(c, image),
    env: podEnv(c, image, name, net, swapAddresses),
    workdir: c.workingDir ?? image.WorkingDir ?? "/",
    uid,
    gid,
    readOnlyRoot: c.securityContext?.readOnlyRootFilesystem ?? false,
    tmpfs: (c.volumeMounts ?? []).filter((m) => emptyDirs.has(m.name)).map((m) => m.mountPath),
  });
  containers.set(name, started);
  cleanups.push(async () => {
    if (started.proc.exitCode === null && started.proc.signalCode === null) {
      started.proc.kill("SIGKILL");
      await started.exited;
    }
  });
  return started;
}

async function psql(sql: string) {
  await run("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql]);
}

// Skipping only when asked: a non-root run that passed without building anything would claim
// what it never checked.
const skipKubelet = process.env.ORDERFLOW_SKIP_KUBELET === "1";
describe.skipIf(skipKubelet)("image and kubelet-style run", () => {
  beforeAll(async () => {
    if (!isRoot) throw new Error("the image build and kubelet-style run need root (ip netns, mount, chroot); run as root, or set ORDERFLOW_SKIP_KUBELET=1 to skip them");
    let t = Date.now();
    console.log(await ensureBaseImage());
    console.log(`base image ready in ${((Date.now() - t) / 1000).toFixed(1)}s`);
    for (const svc of SERVICES) {
      // ORDERFLOW_REUSE_IMAGES=1 reuses images built by an earlier run (for iterating on this test).
      const reuse = process.env.ORDERFLOW_REUSE_IMAGES === "1" && (await imageConfig(imageRef(svc)).catch(() => undefined));
      const secs = reuse ? 0 : await buildImage(svc, imageRef(svc));
      images.set(imageRef(svc), await imageConfig(imageRef(svc)));
      console.log(`built ${imageRef(svc)} in ${secs.toFixed(1)}s, size ${await imageSize(imageRef(svc))}`);
    }
    t = Date.now();
    // The chart as `helm install` renders it by default, with the images we just built.
    objs = await template(["image.registry=localhost"]);
    console.log(`rendered ${objs.length} objects in ${Date.now() - t}ms`);
  });

  afterAll(async () => {
    // Every step runs even when one before it failed, and then the run fails with all of them:
    // a leaked mount, network namespace, database or stream is a defect of this test.
    const failures: unknown[] = [];
    const attempt = (p: Promise<unknown>) => p.catch((e) => void failures.push(e));
    for (const c of cleanups.reverse()) await attempt(c());
    for (const svc of SERVICES) await attempt(psql(`DROP DATABASE IF EXISTS "${DB_PREFIX}_${DATABASES[svc]}" WITH (FORCE)`));
    await attempt(
      (async () => {
        const nc = await connect({ servers: "nats://127.0.0.1:4222" });
        try {
          const jsm = await jetstreamManager(nc);
          for await (const name of jsm.streams.names()) if (name.startsWith(`${NATS_NAMESPACE}_`)) await jsm.streams.delete(name);
        } finally {
          await nc.close();
        }
      })(),
    );
    if (failures.length) throw new AggregateError(failures, `clean-up failed: ${failures.map((e) => (e as Error).message).join("; ")}`);
  });

  it.each(SERVICES)("%s image: node 26 (Active LTS) slim base, USER node (uid 1000), NODE_ENV=production, the services' V8 settings, exec-form CMD in the service's WORKDIR", async (svc) => {
    const cfg = images.get(imageRef(svc))!;
    expect(cfg.User).toBe("node");
    expect(cfg.Cmd).toEqual(["node", "dist/main.js"]);
    expect(cfg.WorkingDir).toBe(`/app/services/${svc}`);
    expect(cfg.Env).toContain("NODE_ENV=production");
    // The heap settings the tests and the bench measure the services with.
    expect(cfg.Env).toContain(`NODE_OPTIONS=${SERVICE_NODE_OPTIONS}`);
    expect(cfg.Env?.some((e) => e.startsWith("NODE_EXTRA_CA_CERTS"))).toBe(false);
    expect(readFileSync(repoPath("Dockerfile"), "utf8")).toMatch(/^ARG NODE_IMAGE=node:26-trixie-slim$/m);
  });

  it.each(SERVICES)("%s image holds only what runs: prod dependencies, compiled code, migrations", async (svc) => {
    const { root, remove } = await mountImage(imageRef(svc), `of-${run_id}-inspect-${svc}`);
    try {
      expect(readFileSync(join(root, "etc/passwd"), "utf8")).toMatch(/^node:x:1000:1000:/m);
      expect(readdirSync(join(root, "app")).sort()).toEqual(["node_modules", "package.json", "services", "shared"]);
      expect(readdirSync(join(root, "app/services"))).toEqual([svc]);
      const runtime = ["dist", "drizzle", "package.json", ...(existsSync(repoPath(`services/${svc}/public`)) ? ["public"] : [])];
      expect(readdirSync(join(root, `app/services/${svc}`)).sort()).toEqual(runtime.sort());
      for (const f of ["dist/main.js", "dist/migrate.js"]) expect(existsSync(join(root, `app/services/${svc}`, f)), f).toBe(true);
      expect(readdirSync(join(root, `app/services/${svc}/drizzle`)).some((f) => f.endsWith(".sql"))).toBe(true);
      if (existsSync(repoPath("shared/src/cli/dlq.ts"))) expect(existsSync(join(root, "app/shared/dist/cli/dlq.js"))).toBe(true);
      for (const dev of ["typescript", "vitest", "tsx", "drizzle-kit", "@types/node", "kubernetes-models"]) {
        expect(existsSync(join(root, "app/node_modules", dev)), `dev dependency ${dev}`).toBe(false);
      }
      expect(existsSync(join(root, "app/node_modules/@orderflow/shared/dist/index.js"))).toBe(true);
      const files = (await run("find", [join(root, "app"), "-path", "*/node_modules", "-prune", "-o", "-type", "f", "-print"])).stdout.split("\n");
      expect(files.filter((f) => /\.(ts|map)$/.test(f) && !f.endsWith(".d.ts"))).toEqual([]);
      // The build secret (the proxy's CA) must not be in any layer.
      expect((await run("find", [root, "-xdev", "-name", "npm_ca"])).stdout.trim()).toBe("");
    } finally {
      await remove();
    }
  });

  it("invalid config exits 2 with one line naming the variable", async () => {
    dumpOnFailure();
    const d = byKind(objs, "Deployment").find((x) => x.metadata.name === "orderflow-user-service")!;
    const spec = podTemplate(d).spec;
    const c = { ...spec.containers[0]!, env: [{ name: "DATABASE_URL", value: "mysql://nope" }] } as ContainerSpec;
    const net = await newPodNetwork();
    const started = await launch("bad-config", c, spec, net, imageRef("user-service"), false);
    const exit = await Promise.race([started.exited, sleep(30_000).then(() => ({ code: -1, signal: null, at: 0 }))]);
    expect(exit.code, started.output()).toBe(2);
    expect(started.output().trim().split("\n")).toHaveLength(1);
    expect(started.output()).toMatch(/DATABASE_URL/);
  });

  it("runs each Deployment like a kubelet: migration Job first, probes pass, a registration gets its welcome order and lands in the event log, SIGTERM exits 0 within the grace period", async () => {
    dumpOnFailure();
    const timings: Record<string, number> = {};
    const pods = new Map<string, { net: PodNetwork; spec: PodSpec; c: PodSpec["containers"][number]; started: StartedContainer }>();
    const deployments = byKind(objs, "Deployment");
    expect(deployments.map((d) => podTemplate(d).metadata.labels["app.kubernetes.io/component"]).sort()).toEqual([...SERVICES].sort());

    for (const d of deployments) {
      const svc = podTemplate(d).metadata.labels["app.kubernetes.io/component"]!;
      const spec = podTemplate(d).spec;
      const c = spec.containers[0]!;
      expect(c.image).toBe(imageRef(svc));

      // 1. The migration Job's container, in its own pod network, against a fresh database.
      const job = byKind(objs, "Job").find((j) => j.metadata.labels?.["orderflow/service"] === svc)!;
      const jobSpec = podTemplate(job).spec;
      const jobNet = await newPodNetwork();
      const dbName = new URL(resolveEnv(jobSpec.containers[0]!, images.get(c.image)!, objs, { name: "x", namespace: "orderflow" }).DATABASE_URL!).pathname.slice(1);
      // The Job's initContainer (postgres image) creates the database in a cluster; here the test does.
      await psql(`CREATE DATABASE "${DB_PREFIX}_${dbName}"`);
      let t = Date.now();
      const migrate = await launch(`${job.metadata.name}-x1`, jobSpec.containers[0]!, jobSpec, jobNet, jobSpec.containers[0]!.image);
      // Under the test's own timeout, so a hung migration fails with its output, not vitest's timeout.
      const done = await Promise.race([migrate.exited, sleep(60_000).then(() => ({ code: -1, signal: null, at: 0 }))]);
      expect(done.code, `${svc} migration Job: ${migrate.output()}`).toBe(0);
      timings[`${svc} migrate`] = Date.now() - t;

      // 2. The Deployment's container in its own network namespace.
      const net = await newPodNetwork();
      const podName = `${d.metadata.name}-7d9f8-${run_id.slice(0, 5)}`;
      pods.set(svc, { net, spec, c, started: await launch(podName, c, spec, net, c.image) });
    }

    // 3. Probes at the rendered ports and paths: startup until it passes, then readiness and liveness.
    const portOf = (c: ContainerSpec, port: string | number) => (typeof port === "number" ? port : c.ports!.find((p) => p.name === port)!.containerPort);
    const urlOf = (svc: string, p: HttpProbe) => {
      const { net, c } = pods.get(svc)!;
      return `http://${net.podIp}:${portOf(c, p.httpGet.port)}${p.httpGet.path}`;
    };
    await Promise.all(
      [...pods.entries()].map(async ([svc, { c, started }]) => {
        const t = Date.now();
        const passUntil = async (p: HttpProbe, what: string, budgetMs: number) => {
          const deadline = Date.now() + budgetMs;
          for (;;) {
            if (started.proc.exitCode !== null) throw new Error(`${svc} exited (${started.proc.exitCode}) before its ${what} probe passed:\n${started.output()}`);
            const status = await probe(urlOf(svc, p), p.timeoutSeconds);
            if (status >= 200 && status < 400) return;
            if (Date.now() > deadline) throw new Error(`${svc} ${what} probe ${urlOf(svc, p)} still ${status}:\n${started.output().slice(-3000)}`);
            await sleep(Math.min(p.periodSeconds * 1000, 500));
          }
        };
        await passUntil(c.startupProbe, "startup", c.startupProbe.periodSeconds * c.startupProbe.failureThreshold * 1000);
        timings[`${svc} startup probe`] = Date.now() - t;
        await passUntil(c.readinessProbe, "readiness", 60_000);
        timings[`${svc} ready`] = Date.now() - t;
        expect(await probe(urlOf(svc, c.livenessProbe), c.livenessProbe.timeoutSeconds)).toBe(200);
      }),
    );

    // 4. One registration through user-service; order-service creates the welcome order.
    const users = pods.get("user-service")!;
    const orders = pods.get("order-service")!;
    const base = (p: typeof users) => `http://${p.net.podIp}:${p.c.ports![0]!.containerPort}`;
    let t = Date.now();
    const res = await fetch(`${base(users)}/users`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: `kubelet-${run_id}@example.com`, name: "Kube Let" }),
    });
    expect(res.status).toBe(201);
    const user = (await res.json()) as { id: string };
    type Order = { source: string; userId: string };
    const items = await waitFor(async () => {
      const r = await fetch(`${base(orders)}/orders?userId=${user.id}`);
      const page = ((await r.json()) as { items?: Order[] }).items ?? [];
      return page.length > 0 ? page : undefined;
    }, { what: `the welcome order of ${user.id}`, timeoutMs: 30_000, intervalMs: 200 });
    expect(items[0]).toMatchObject({ userId: user.id, source: "registration" });
    timings["registration → welcome order"] = Date.now() - t;

    // The event log stored the registration under the user's id.
    const log = pods.get("event-log")!;
    const subjects = await waitFor(async () => {
      const r = await fetch(`${base(log)}/events?entity=${user.id}`);
      const found = ((await r.json()) as { items: { subject: string }[] }).items.map((e) => e.subject);
      return found.includes("users.registered") ? found : undefined;
    }, { what: `users.registered of ${user.id} in the event log`, timeoutMs: 30_000, intervalMs: 200 });
    expect(subjects).toContain("users.registered");
    timings["registration → event log"] = Date.now() - t;

    // 5. Termination as the kubelet does it: preStop sleep, then SIGTERM, SIGKILL at the grace period.
    await Promise.all(
      [...pods.entries()].map(async ([svc, { spec, c, started }]) => {
        const grace = spec.terminationGracePeriodSeconds ?? 30;
        const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
        await sleep(preStop * 1000);
        // Still serving during preStop: endpoints are being removed, not the process.
        expect(await probe(urlOf(svc, c.livenessProbe), 2)).toBe(200);
        const sent = Date.now();
        started.proc.kill("SIGTERM");
        const readyAfter = await probe(urlOf(svc, c.readinessProbe), 1);
        const exit = await Promise.race([started.exited, sleep((grace - preStop) * 1000).then(() => undefined)]);
        expect(exit, `${svc} still running ${grace - preStop}s after SIGTERM:\n${started.output().slice(-3000)}`).toBeDefined();
        expect(exit!.code, started.output().slice(-3000)).toBe(0);
        expect([0, 503]).toContain(readyAfter);
        timings[`${svc} SIGTERM → exit (limit ${(grace - preStop) * 1000})`] = exit!.at - sent;
      }),
    );
    console.log(`kubelet-style run (ms): ${JSON.stringify(timings, null, 1)}`);
  }, 300_000); // three migrations (each given up to 60 s), three starts, the flow and the shutdowns
});
