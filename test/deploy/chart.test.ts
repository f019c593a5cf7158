import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { parser as promql } from "@prometheus-io/lezer-promql";
import { collectDefaultMetrics, Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import { byKind, CHART, find, helm, template, templateError, type K8sObject } from "./support/helm.js";
import { repoPath, run } from "./support/repo.js";
import { SERVICES } from "./support/services.js";
import { validateObjects } from "./support/validate.js";

/** The series the services export: orderflow's own (named in its sources) and prom-client's defaults. */
const exportedSeries = (() => {
  const own = ["shared/src/metrics/index.ts", "shared/src/lifecycle/service.ts"].flatMap((f) => [...readFileSync(repoPath(f), "utf8").matchAll(/"(orderflow_[a-z_]+)"/g)].map((m) => m[1]!));
  const defaults = new Registry();
  collectDefaultMetrics({ register: defaults });
  return new Set([...own, ...defaults.getMetricsAsArray().map((m) => m.name)]);
})();

/** A query Prometheus's own grammar parses, reading only series the services export. */
function expectPromQL(query: string, what: string) {
  const errors: number[] = [];
  promql.parse(query).iterate({ enter: (n) => void (n.type.isError && errors.push(n.from)) });
  expect(errors, `${what}: ${query}`).toEqual([]);
  for (const [name] of query.matchAll(/\b(?:orderflow|process|nodejs)_[a-z0-9_]+/g)) expect(exportedSeries, `${what} reads ${name}`).toContain(name.replace(/_(bucket|count|sum)$/, ""));
}

/** Value combinations the chart must render and validate for. */
const combos: Record<string, { sets: string[]; valuesFiles?: string[] }> = {
  defaults: { sets: [] },
  "gateway instead of ingress": {
    sets: ["ingress.enabled=false", "gateway.enabled=true", "gateway.createGateway=true", "gateway.gatewayClassName=eg", "gateway.hostnames={orderflow.example.com}"],
  },
  "external NATS and Postgres (deps off)": {
    sets: [
      "nats.deploy=false",
      "nats.url=nats://nats-0.nats:4222\\,nats://nats-1.nats:4222",
      "postgres.deploy=false",
      ...SERVICES.map((svc) => `services.${svc}.database.url=postgres://u:p@db:5432/${svc.replaceAll("-", "_")}`),
    ],
  },
  existingSecret: {
    sets: [
      "postgres.deploy=false",
      ...SERVICES.map((svc) => `services.${svc}.database.existingSecret=${svc}-db`),
      "services.order-service.database.existingSecretKey=uri",
      "nats.auth.existingSecret=nats-creds",
    ],
  },
  "replicas 3 without HPA": {
    sets: ["serviceDefaults.replicaCount=3", "serviceDefaults.autoscaling.enabled=false", "config.STREAM_REPLICAS=3"],
  },
  "NATS token auth and ServiceMonitor": { sets: ["nats.auth.token=s3cret", "serviceMonitor.enabled=true", "prometheusRule.enabled=true"] },
  "another service is one entry": {
    sets: ["services.audit.routes={/audit}", "services.audit.database.name=audit"],
  },
  "production values": { sets: [], valuesFiles: [repoPath("helm/examples/production-values.yaml")] },
  "NATS over TLS with a client certificate": {
    sets: ["nats.deploy=false", "nats.url=tls://nats.nats.svc:4222", "nats.tls.existingSecret=nats-client-tls"],
  },
  "extra env, volumes and mounts": {
    sets: [
      "serviceDefaults.extraEnv[0].name=NODE_EXTRA_CA_CERTS",
      "serviceDefaults.extraEnv[0].value=/etc/orderflow-ca/ca.crt",
      "serviceDefaults.extraEnv[1].name=OTEL_TOKEN",
      "serviceDefaults.extraEnv[1].valueFrom.secretKeyRef.name=otel",
      "serviceDefaults.extraEnv[1].valueFrom.secretKeyRef.key=token",
      "serviceDefaults.extraVolumes[0].name=ca",
      "serviceDefaults.extraVolumes[0].configMap.name=corp-ca",
      "serviceDefaults.extraVolumeMounts[0].name=ca",
      "serviceDefaults.extraVolumeMounts[0].mountPath=/etc/orderflow-ca",
      "serviceDefaults.extraVolumeMounts[0].readOnly=true",
      "serviceDefaults.priorityClassName=high",
    ],
  },
  "placement on a node pool": {
    sets: [
      "serviceDefaults.nodeSelector.pool=apps",
      "serviceDefaults.tolerations[0].key=dedicated",
      "serviceDefaults.tolerations[0].operator=Exists",
      "serviceDefaults.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone",
      "serviceDefaults.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
      "serviceDefaults.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
      "serviceDefaults.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey=kubernetes.io/hostname",
      "serviceDefaults.podAnnotations.example\\.com/owner=shop-team",
      "serviceDefaults.podLabels.team=shop",
      "serviceDefaults.migrations.podAnnotations.example\\.com/job=migrate",
      "serviceDefaults.migrations.podLabels.kind=job",
      "serviceDefaults.priorityClassName=high",
    ],
  },
};

const rendered = new Map<string, Promise<K8sObject[]>>();
const render = (name: string) => {
  if (!rendered.has(name)) rendered.set(name, template(combos[name]!.sets, { valuesFiles: combos[name]!.valuesFiles }));
  return rendered.get(name)!;
};

type Container = {
  name: string;
  image: string;
  command?: string[];
  ports?: { name: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: Record<string, Record<string, unknown>> }[];
  envFrom?: { configMapRef?: { name: string } }[];
  startupProbe?: { httpGet: { path: string; port: string } };
  livenessProbe?: { httpGet: { path: string; port: string } };
  readinessProbe?: { httpGet: { path: string; port: string } };
  lifecycle?: { preStop?: { sleep?: { seconds: number }; exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string }[];
};
type PodSpec = {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: Record<string, unknown>;
  terminationGracePeriodSeconds?: number;
  volumes?: { name: string; emptyDir?: unknown; secret?: { secretName: string; items?: { key: string; path: string }[] } }[];
};
const podSpec = (o: K8sObject) => (o.spec as { template: { spec: PodSpec } }).template.spec;

const tempDirs: string[] = [];
afterAll(() => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
};

/**
 * The bundled NATS server's files laid out in a temp dir as its pod sees them: the ConfigMap's
 * nats.conf under etc/nats and, with auth, the included auth.conf under etc/nats-auth, either the
 * chart Secret's key or what the auth-config init container writes from the environment it gets
 * from `existingSecret` (that Secret's data; the script runs here, with sh). Returns nats.conf's path.
 */
async function natsFiles(objs: K8sObject[], existingSecret: Record<string, string> = {}): Promise<string> {
  const root = tempDir("of-nats-");
  const put = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  put("etc/nats/nats.conf", (find(objs, "ConfigMap", "orderflow-nats").data as Record<string, string>)["nats.conf"]!);
  const spec = podSpec(find(objs, "StatefulSet", "orderflow-nats"));
  const mount = spec.containers[0]!.volumeMounts!.find((m) => m.name === "auth");
  const volume = spec.volumes!.find((v) => v.name === "auth");
  if (mount && volume?.secret) {
    const data = find(objs, "Secret", volume.secret.secretName).stringData as Record<string, string>;
    for (const item of volume.secret.items!) put(join(mount.mountPath, item.path), data[item.key]!);
  } else if (mount) {
    const init = spec.initContainers!.find((c) => c.name === "auth-config")!;
    const env: Record<string, string> = {};
    for (const e of init.env!) env[e.name] = existingSecret[(e.valueFrom!.secretKeyRef as { key: string }).key]!;
    mkdirSync(join(root, mount.mountPath), { recursive: true });
    await run("sh", ["-ec", init.command![2]!.replaceAll(mount.mountPath, join(root, mount.mountPath))], { env: { PATH: process.env.PATH, ...env } });
  }
  return join(root, "etc/nats/nats.conf");
}
/** The environment the rendered config reads (server_name: $POD_NAME). */
const natsEnv = { ...process.env, POD_NAME: "orderflow-nats-0" };
/** `nats-server -t`: the real binary (this machine's, 2.9.10) parses and checks the config. */
const natsConfigTest = (conf: string) => run("nats-server", ["-t", "-c", conf], { env: natsEnv });
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
/** Runs nats-server on the config, with ports, JetStream store and pid file moved to free ones and a temp dir. */
async function startNats(conf: string) {
  const dir = dirname(conf);
  const [port, monitor] = [await freePort(), await freePort()];
  const pidFile = join(dir, "nats.pid");
  // Beside the original, so the includes it names resolve the same; -sd would clash with store_dir.
  const local = join(dir, "local.conf");
  writeFileSync(local, readFileSync(conf, "utf8").replace(/^(\s*store_dir:) .*$/m, `$1 ${join(dir, "data")}`));
  const args = ["-c", local, "-a", "127.0.0.1", "-p", String(port), "-m", String(monitor), "-P", pidFile];
  const proc = spawn("nats-server", args, { env: natsEnv, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d: Buffer) => (log += d.toString()));
  for (let i = 0; i < 100 && !/Server is ready/.test(log) && proc.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  if (!/Server is ready/.test(log)) {
    proc.kill("SIGKILL");
    throw new Error(`nats-server did not start: ${log}`);
  }
  return { url: `nats://127.0.0.1:${port}`, proc, pidFile, log: () => log };
}

describe("helm/orderflow", () => {
  it("passes helm lint --strict, with defaults and with every combination", async () => {
    const { stdout } = await run(helm(), ["lint", "--strict", CHART, "--kube-version", "1.33.0"]);
    expect(stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    for (const [name, c] of Object.entries(combos)) {
      const args = ["lint", "--strict", CHART, "--kube-version", "1.33.0"];
      for (const f of c.valuesFiles ?? []) args.push("-f", f);
      for (const s of c.sets) args.push("--set", s);
      const out = await run(helm(), args).catch((e: Error) => ({ stdout: `${name}: ${e.message}` }));
      expect(out.stdout, name).toMatch(/0 chart\(s\) failed/);
      expect(out.stdout, name).not.toMatch(/\[(WARNING|ERROR)\]/);
    }
  });

  it.each(Object.keys(combos))("renders %s, every object valid against the Kubernetes 1.33 schemas", async (name) => {
    const objs = await render(name);
    expect(objs.length).toBeGreaterThan(10);
    expect(await validateObjects(objs)).toEqual([]);
    const names = objs.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(names).size, "duplicate objects").toBe(names.length);
  });

  it("rejects a Kubernetes older than the declared kubeVersion", async () => {
    const { stdout } = await run(helm(), ["show", "chart", CHART]);
    expect(stdout).toMatch(/kubeVersion: '>=1\.33\.0-0'/);
    await expect(run(helm(), ["template", "x", CHART, "--kube-version", "1.32.0"])).rejects.toThrow(/kubeVersion|incompatible/i);
  });

  it("defaults render the full dev system: per service Deployment, Service, SA, ConfigMap, Secret, HPA, PDB, NetworkPolicy, migration Job; Ingress; NATS and Postgres", async () => {
    const objs = await render("defaults");
    for (const svc of SERVICES) {
      for (const kind of ["Deployment", "Service", "ServiceAccount", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"]) {
        find(objs, kind, `orderflow-${svc}`);
      }
      find(objs, "Secret", `orderflow-${svc}-db`);
      expect(byKind(objs, "Job").filter((j) => j.metadata.name.startsWith(`orderflow-${svc}-migrate-`))).toHaveLength(1);
    }
    find(objs, "Ingress", "orderflow");
    find(objs, "StatefulSet", "orderflow-nats");
    find(objs, "StatefulSet", "orderflow-postgres");
    find(objs, "NetworkPolicy", "orderflow-default-deny");
    expect(byKind(objs, "HTTPRoute")).toHaveLength(0);
    expect(byKind(objs, "ServiceMonitor")).toHaveLength(0);
    // Our images are the node's own (local builds, `kind load`): an unqualified orderflow/… would
    // pull docker.io/orderflow/*, which is not ours. NATS and Postgres are Docker's official images.
    const images = [...byKind(objs, "Deployment"), ...byKind(objs, "Job"), ...byKind(objs, "StatefulSet")].flatMap((o) => [...podSpec(o).containers, ...(podSpec(o).initContainers ?? [])].map((c) => c.image));
    expect([...new Set(images)].sort()).toEqual(["localhost/orderflow/event-log:0.1.0", "localhost/orderflow/order-service:0.1.0", "localhost/orderflow/user-service:0.1.0", "nats:2.14.9-alpine", "postgres:17.11-trixie"]);
    // A repository that names its registry (as one given before image.registry had a default did) keeps it.
    const imageOf = async (sets: string[]) => podSpec(find(await template(sets), "Deployment", "orderflow-user-service")).containers[0]!.image;
    expect(await imageOf(["services.user-service.image.repository=ghcr.io/acme/users"])).toBe("ghcr.io/acme/users:0.1.0");
    expect(await imageOf(["image.repositoryPrefix=registry.local:5000/shop"])).toBe("registry.local:5000/shop/user-service:0.1.0");
    expect(await imageOf(["image.registry=", "image.repositoryPrefix=orderflow"])).toBe("orderflow/user-service:0.1.0");
    expect(await imageOf(["image.registry=quay.io/acme"])).toBe("quay.io/acme/orderflow/user-service:0.1.0");
  });

  it("gives every service probes on /healthz and /readyz, a hardened securityContext, resources and a grace period covering preStop + SHUTDOWN_TIMEOUT_MS", async () => {
    const objs = await render("defaults");
    for (const svc of SERVICES) {
      const spec = podSpec(find(objs, "Deployment", `orderflow-${svc}`));
      const c = spec.containers[0]!;
      expect(c.ports).toEqual([
        { name: "http", containerPort: 3000, protocol: "TCP" },
        { name: "metrics", containerPort: 9464, protocol: "TCP" },
      ]);
      expect(c.startupProbe?.httpGet).toEqual({ path: "/healthz", port: "http" });
      expect(c.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "http" });
      expect(c.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "http" });
      expect(c.command, "the image's exec-form CMD runs").toBeUndefined();
      expect(c.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
      expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } });
      expect(c.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
      expect(spec.volumes?.find((v) => v.name === "tmp")?.emptyDir).toBeDefined();
      expect(c.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(c.resources?.limits).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });

      const cm = find(objs, "ConfigMap", `orderflow-${svc}`).data as Record<string, string>;
      expect(cm).toMatchObject({ MIGRATE_ON_START: "false", PORT: "3000", NATS_URL: "nats://orderflow-nats:4222" });
      const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
      const shutdownS = Number(cm.SHUTDOWN_TIMEOUT_MS) / 1000;
      expect(preStop).toBeGreaterThan(0);
      expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(preStop + shutdownS);

      const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));
      expect(env.SERVICE_INSTANCE?.valueFrom).toEqual({ fieldRef: { fieldPath: "metadata.name" } });
      expect(env.DATABASE_URL?.valueFrom).toEqual({ secretKeyRef: { name: `orderflow-${svc}-db`, key: "DATABASE_URL" } });
    }
  });

  it("grace period follows shutdown.timeoutMs", async () => {
    const objs = await template(["shutdown.timeoutMs=30000"]);
    const spec = podSpec(find(objs, "Deployment", "orderflow-user-service"));
    expect(spec.terminationGracePeriodSeconds).toBe(5 + 30 + 5);
    expect((find(objs, "ConfigMap", "orderflow-user-service").data as Record<string, string>).SHUTDOWN_TIMEOUT_MS).toBe("30000");
  });

  it("runs migrations in Jobs: plain resources with the bundled Postgres (helm install --wait cannot deadlock on them), pre-install hooks with an external one", async () => {
    const dev = byKind(await render("defaults"), "Job");
    expect(dev).toHaveLength(SERVICES.length);
    for (const job of dev) {
      // A post-install hook would run only after --wait saw every pod ready, and no pod is ready
      // before its migrations.
      expect(job.metadata.annotations?.["helm.sh/hook"]).toBeUndefined();
      // A TTL would delete it, and Argo CD, Flux or the next helm upgrade would create and run it again.
      expect((job.spec as { ttlSecondsAfterFinished?: number }).ttlSecondsAfterFinished).toBeUndefined();
      const spec = podSpec(job);
      expect(spec.containers[0]!.command).toEqual(["node", "dist/migrate.js"]);
      expect(spec.initContainers?.[0]?.name).toBe("create-database");
    }
    // Anything that changes the Job's spec changes its name: a Job's pod template cannot be patched.
    const jobName = async (sets: string[]) => byKind(await template(sets), "Job").find((j) => j.metadata.name.startsWith("orderflow-user-service-migrate-"))!.metadata.name;
    const base = await jobName([]);
    expect(dev.map((j) => j.metadata.name)).toContain(base);
    expect(await jobName(["services.user-service.image.tag=0.2.0"])).not.toBe(base);
    expect(await jobName(["services.user-service.migrations.backoffLimit=5"])).not.toBe(base);
    expect(await jobName(["services.user-service.replicaCount=4"])).toBe(base);
    const ext = await render("external NATS and Postgres (deps off)");
    expect(byKind(ext, "Job")).not.toHaveLength(0);
    for (const job of byKind(ext, "Job")) {
      expect(job.metadata.annotations?.["helm.sh/hook"]).toBe("pre-install,pre-upgrade");
      // Helm deletes a hook that succeeded; a failed one goes after a while.
      expect((job.spec as { ttlSecondsAfterFinished?: number }).ttlSecondsAfterFinished).toBeGreaterThan(0);
      expect(podSpec(job).initContainers).toBeUndefined();
    }
    expect(byKind(ext, "StatefulSet")).toHaveLength(0);
    // Without Helm (kubectl apply of the rendered manifests, as k8s/prod is): plain Jobs that read
    // the release's own URL Secrets, no hook copies of them.
    const plain = await template([...combos["external NATS and Postgres (deps off)"]!.sets, "migrationHooks=false"]);
    expect(byKind(plain, "Job")).toHaveLength(SERVICES.length);
    for (const job of byKind(plain, "Job")) {
      expect(job.metadata.annotations?.["helm.sh/hook"], job.metadata.name).toBeUndefined();
      expect((job.spec as { ttlSecondsAfterFinished?: number }).ttlSecondsAfterFinished, job.metadata.name).toBeUndefined();
      expect(podSpec(job).containers[0]!.env!.find((e) => e.name === "DATABASE_URL")!.valueFrom!.secretKeyRef!.name).toMatch(/^orderflow-.*-db$/);
    }
    expect(byKind(plain, "Secret").filter((s) => s.metadata.annotations?.["helm.sh/hook"])).toEqual([]);
  });

  it("an external database's URL Secret belongs to the release; the pre-install migration Job reads a hook copy that Helm deletes", async () => {
    const ext = await render("external NATS and Postgres (deps off)");
    const dbRef = (o: K8sObject) => podSpec(o).containers[0]!.env!.find((e) => e.name === "DATABASE_URL")!.valueFrom!.secretKeyRef as { name: string; key: string };
    const weight = (o: K8sObject) => Number(o.metadata.annotations?.["helm.sh/hook-weight"] ?? 0);
    for (const svc of SERVICES) {
      // A hook would be left behind by helm uninstall (holding a password), deleted and created
      // again on every upgrade (pods starting meanwhile fail), and gone when the release stops
      // rendering it as one: the pods read a release object, updated in place.
      const own = find(ext, "Secret", `orderflow-${svc}-db`);
      expect(own.metadata.annotations?.["helm.sh/hook"], svc).toBeUndefined();
      expect(dbRef(find(ext, "Deployment", `orderflow-${svc}`)).name).toBe(own.metadata.name);
      // The Job runs before the release's objects exist: its own copy, created just before it.
      const job = byKind(ext, "Job").find((j) => j.metadata.name.startsWith(`orderflow-${svc}-migrate-`))!;
      const copy = find(ext, "Secret", dbRef(job).name);
      expect(copy.metadata.name).not.toBe(own.metadata.name);
      expect(copy.stringData).toEqual(own.stringData);
      expect(copy.metadata.annotations?.["helm.sh/hook"]).toBe(job.metadata.annotations?.["helm.sh/hook"]);
      expect(weight(copy)).toBeLessThan(weight(job));
      expect(copy.metadata.annotations?.["helm.sh/hook-delete-policy"]?.split(",").sort()).toEqual(["before-hook-creation", "hook-succeeded"]);
    }
    // No copies where no hook reads one: the bundled Postgres (plain Jobs), an existingSecret, migrations off.
    const copies = (objs: K8sObject[]) => byKind(objs, "Secret").filter((o) => o.metadata.annotations?.["helm.sh/hook"]);
    expect(copies(await render("defaults"))).toEqual([]);
    expect(copies(await render("existingSecret"))).toEqual([]);
    const off = await template(["nats.deploy=false", "nats.url=nats://n:4222", "postgres.deploy=false", "serviceDefaults.database.url=postgres://u@db:5432/x", "services.event-log.migrations.enabled=false"]);
    expect(copies(off).map((o) => o.metadata.name).sort()).toEqual(["orderflow-order-service-db-migration", "orderflow-user-service-db-migration"]);
  });

  it("routes /users and /orders through the Ingress, or through an HTTPRoute", async () => {
    type Path = { path: string; backend: { service: { name: string } } };
    const ing = find(await render("defaults"), "Ingress", "orderflow").spec as { rules: { http: { paths: Path[] } }[] };
    const paths = Object.fromEntries(ing.rules[0]!.http.paths.map((p) => [p.path, p.backend.service.name]));
    const expected = {
      "/users": "orderflow-user-service",
      "/orders": "orderflow-order-service",
      "/events": "orderflow-event-log",
      "/catalog": "orderflow-event-log",
      "/asyncapi.json": "orderflow-event-log",
      "/": "orderflow-event-log",
    };
    expect(paths).toEqual(expected);

    const gw = await render("gateway instead of ingress");
    expect(byKind(gw, "Ingress")).toHaveLength(0);
    find(gw, "Gateway", "orderflow");
    const route = find(gw, "HTTPRoute", "orderflow").spec as { rules: { matches: { path: { value: string } }[]; backendRefs: { name: string }[] }[] };
    const routed = Object.fromEntries(route.rules.flatMap((r) => r.matches.map((m) => [m.path.value, r.backendRefs[0]!.name])));
    expect(routed).toEqual(expected);

    const ingClass = find(await template(["ingress.className=traefik"]), "Ingress", "orderflow").spec as { ingressClassName: string };
    expect(ingClass.ingressClassName).toBe("traefik");
  });

  it("denies by default and allows ingress controller → services → NATS and Postgres", async () => {
    const objs = await render("defaults");
    const deny = find(objs, "NetworkPolicy", "orderflow-default-deny").spec as Record<string, unknown>;
    expect(deny).toMatchObject({ policyTypes: ["Ingress", "Egress"] });
    expect(deny.ingress).toBeUndefined();
    expect(deny.egress).toBeUndefined();
    const np = find(objs, "NetworkPolicy", "orderflow-user-service").spec as {
      ingress: { from: unknown[] }[];
      egress: { to: { podSelector?: { matchLabels: Record<string, string> } }[]; ports: { port: number }[] }[];
    };
    expect(np.ingress[0]!.from).toEqual([{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } }]);
    const egressTo = np.egress.flatMap((e) => e.to.map((t) => t.podSelector?.matchLabels["app.kubernetes.io/component"]).filter(Boolean));
    expect(egressTo).toEqual(["nats", "postgres"]);
    const natsIn = find(objs, "NetworkPolicy", "orderflow-nats").spec as { ingress: { ports: { port: number }[] }[] };
    expect(natsIn.ingress[0]!.ports).toEqual([{ port: 4222, protocol: "TCP" }]);
    // Migration Jobs reach the Postgres their services use, and no other: externalPostgres
    // (by default anywhere on 5432) only when some service's database is external.
    type Egress = { egress: { to: Record<string, unknown>[]; ports: { port: number }[] }[] };
    const migrationTo = (o: K8sObject[]) => (find(o, "NetworkPolicy", "orderflow-migration").spec as Egress).egress.filter((r) => r.ports.some((p) => p.port === 5432)).map((r) => r.to);
    const bundled = [[{ podSelector: { matchLabels: { "app.kubernetes.io/name": "orderflow", "app.kubernetes.io/instance": "orderflow", "app.kubernetes.io/component": "postgres" } } }]];
    const anywhere = [[{ ipBlock: { cidr: "0.0.0.0/0" } }]];
    expect(migrationTo(objs)).toEqual(bundled);
    expect(migrationTo(await render("external NATS and Postgres (deps off)"))).toEqual(anywhere);
    expect(migrationTo(await template(["services.order-service.database.url=postgres://app@db:5432/orders"]))).toEqual([...bundled, ...anywhere]);
    expect(migrationTo(await template(["services.order-service.database.url=postgres://app@db:5432/orders", "services.order-service.migrations.enabled=false"]))).toEqual(bundled);
  });

  it("bundled Postgres creates one database per service; NATS runs JetStream on a PVC", async () => {
    const objs = await render("another service is one entry");
    // helm uninstall keeps the PVC, so it keeps the password Postgres was initialised with too.
    expect(find(objs, "Secret", "orderflow-postgres").metadata.annotations).toMatchObject({ "helm.sh/resource-policy": "keep" });
    const pvc = (find(objs, "StatefulSet", "orderflow-postgres").spec as { persistentVolumeClaimRetentionPolicy?: { whenDeleted?: string } }).persistentVolumeClaimRetentionPolicy;
    expect(pvc?.whenDeleted ?? "Retain").toBe("Retain");
    const sql = (find(objs, "ConfigMap", "orderflow-postgres-initdb").data as Record<string, string>)["10-databases.sql"]!;
    expect(sql).toContain('CREATE DATABASE "users"');
    expect(sql).toContain('CREATE DATABASE "orders"');
    expect(sql).toContain('CREATE DATABASE "event_log"');
    expect(sql).toContain('CREATE DATABASE "audit"');
    // Room for every pool at the HPAs' maximum plus a rolling update's extra pod: four services
    // (audit included) × (4 + 1) × 8, plus 10. Postgres's default 100 ran out at three.
    const maxConnections = async (sets: string[]) => (podSpec(find(await template(sets), "StatefulSet", "orderflow-postgres")).containers[0] as { args?: string[] }).args;
    expect((podSpec(find(objs, "StatefulSet", "orderflow-postgres")).containers[0] as { args?: string[] }).args).toEqual(["-c", "max_connections=170"]);
    expect(await maxConnections(["services.order-service.env.DATABASE_POOL_SIZE=20", "services.user-service.autoscaling.enabled=false", "services.user-service.replicaCount=2"])).toEqual(["-c", `max_connections=${10 + 3 * 8 + 5 * 20 + 5 * 8}`]);
    const conf = (find(objs, "ConfigMap", "orderflow-nats").data as Record<string, string>)["nats.conf"]!;
    expect(conf).toMatch(/jetstream \{\s+store_dir: \/data/);
    const sts = find(objs, "StatefulSet", "orderflow-nats").spec as { volumeClaimTemplates: { metadata: { name: string } }[] };
    expect(sts.volumeClaimTemplates[0]!.metadata.name).toBe("data");
  });

  it("bundled NATS: nats-server accepts the rendered config; the preStop hook puts it in lame duck mode, which the grace period covers", async () => {
    const objs = await render("defaults");
    const conf = await natsFiles(objs);
    // nats-server refuses a lame_duck_duration under 30s, and so a config that sets one: it never starts.
    await natsConfigTest(conf);
    const text = (find(objs, "ConfigMap", "orderflow-nats").data as Record<string, string>)["nats.conf"]!;
    const seconds = (key: string) => Number(new RegExp(`^${key}: (\\d+)s$`, "m").exec(text)?.[1]);
    const pidFile = /^pid_file: (\S+)$/m.exec(text)?.[1];
    expect(pidFile).toBeDefined();
    const spec = podSpec(find(objs, "StatefulSet", "orderflow-nats"));
    const c = spec.containers[0]!;
    expect(c.lifecycle?.preStop?.exec?.command).toEqual(["nats-server", "--signal", `ldm=${pidFile}`]);
    // The root filesystem is read-only: the pid file's directory is a volume of its own.
    const runMount = c.volumeMounts!.find((m) => m.mountPath === dirname(pidFile!));
    expect(spec.volumes!.find((v) => v.name === runMount?.name)?.emptyDir).toBeDefined();
    // nats-server ignores SIGTERM in lame duck mode: the kubelet's SIGKILL must come after it ends.
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(seconds("lame_duck_grace_period") + seconds("lame_duck_duration"));

    // The preStop command against the running server with a client connected: lame duck mode,
    // and the SIGTERM the kubelet sends next does not cut it short.
    const srv = await startNats(conf);
    try {
      const nc = await connect({ servers: srv.url, reconnect: false });
      await run("nats-server", ["--signal", `ldm=${srv.pidFile}`]);
      for (let i = 0; i < 40 && !/lame duck mode/i.test(srv.log()); i++) await new Promise((r) => setTimeout(r, 50));
      expect(srv.log()).toMatch(/lame duck mode/i);
      srv.proc.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 1000));
      expect([srv.proc.exitCode, srv.proc.signalCode]).toEqual([null, null]);
      expect(nc.isClosed()).toBe(false);
      await nc.close();
    } finally {
      srv.proc.kill("SIGKILL");
    }
  });

  it("spreads each service's own pods: a topology constraint without a labelSelector gets the service's selector", async () => {
    const objs = await template([
      "serviceDefaults.topologySpreadConstraints[0].maxSkew=1",
      "serviceDefaults.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
      "serviceDefaults.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
      "services.event-log.topologySpreadConstraints[0].maxSkew=2",
      "services.event-log.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
      "services.event-log.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
      "services.event-log.topologySpreadConstraints[0].labelSelector.matchLabels.team=a",
    ]);
    type Spread = { topologySpreadConstraints: { labelSelector: { matchLabels: Record<string, string> } }[] };
    for (const svc of ["user-service", "order-service"]) {
      const d = find(objs, "Deployment", `orderflow-${svc}`);
      const selector = (d.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
      expect((podSpec(d) as unknown as Spread).topologySpreadConstraints[0]!.labelSelector.matchLabels).toEqual(selector);
      // Per revision, so a rolling update's old pods do not skew where the new ones go.
      expect((podSpec(d) as unknown as Spread).topologySpreadConstraints[0]).toMatchObject({ matchLabelKeys: ["pod-template-hash"] });
    }
    const own = (podSpec(find(objs, "Deployment", "orderflow-event-log")) as unknown as Spread).topologySpreadConstraints;
    expect(own).toEqual([expect.objectContaining({ labelSelector: { matchLabels: { team: "a" } } })]);
    expect(own[0]).not.toHaveProperty("matchLabelKeys"); // a selector of the user's own is taken as it is
  });

  it("bundled NATS checks the credentials it is given, whatever their characters: from values, or from an existingSecret as told", async () => {
    // Each was once a $VARIABLE, which nats-server parses as config: a number, a map's end, a
    // list; a trailing newline is what `kubectl create secret --from-file` stores.
    const nasty = ["x}y", "a,b;c", "123456", "a b", "q'uote", 'd"q\\', "$HOME", "true", "tr\nail\n", "é ✓"];
    const values = (auth: Record<string, string>) => {
      const f = join(tempDir("of-values-"), "auth.yaml");
      writeFileSync(f, JSON.stringify({ nats: { auth } }));
      return f;
    };
    const accepts = async (conf: string, good: { user?: string; pass?: string; token?: string }, bad: typeof good) => {
      await natsConfigTest(conf);
      const srv = await startNats(conf);
      try {
        await (await connect({ servers: srv.url, reconnect: false, ...good })).close();
        await expect(connect({ servers: srv.url, reconnect: false, ...bad })).rejects.toThrow(/authorization/i);
      } finally {
        srv.proc.kill("SIGKILL");
      }
    };
    for (const secret of nasty) {
      const objs = await template([], { valuesFiles: [values({ user: `svc ${secret}`, password: secret })] });
      // The services send what their Secret holds.
      expect(find(objs, "Secret", "orderflow-nats-auth").stringData).toMatchObject({ NATS_USER: `svc ${secret}`, NATS_PASSWORD: secret });
      await accepts(await natsFiles(objs), { user: `svc ${secret}`, pass: secret }, { user: `svc ${secret}`, pass: `${secret}x` });
      const token = await template([], { valuesFiles: [values({ token: secret })] });
      await accepts(await natsFiles(token), { token: secret }, { token: `${secret}x` });

      const own = await template(["nats.auth.existingSecret=creds"]);
      await accepts(await natsFiles(own, { NATS_USER: `svc ${secret}`, NATS_PASSWORD: secret }), { user: `svc ${secret}`, pass: secret }, { user: `svc ${secret}`, pass: `${secret}x` });
      const ownToken = await template(["nats.auth.existingSecret=creds", "nats.auth.existingSecretType=token"]);
      await accepts(await natsFiles(ownToken, { NATS_TOKEN: secret }), { token: secret }, { token: `${secret}x` });
    }
    // The user's Secret is not the chart's: no copy of it, and the server's pod reads only the keys its type needs.
    const own = await template(["nats.auth.existingSecret=creds", "nats.auth.existingSecretType=token"]);
    expect(byKind(own, "Secret").map((s) => s.metadata.name)).not.toContain("orderflow-nats-auth");
    expect(podSpec(find(own, "StatefulSet", "orderflow-nats")).initContainers![0]!.env!.map((e) => e.name)).toEqual(["NATS_TOKEN"]);
    // An empty key fails the pod's start, with the reason in its log, instead of running without auth.
    await expect(natsFiles(own, { NATS_TOKEN: "" })).rejects.toThrow(/NATS_TOKEN of Secret creds is empty/);
    // A user without a password (or the reverse) is refused: nats-server would find no password.
    expect(await templateError(["nats.auth.user=foo"])).toMatch(/nats\/auth\/password/);
    expect(await templateError(["nats.auth.password=foo"])).toMatch(/nats\/auth\/user/);
    // nats-server takes a password shaped like a bcrypt hash for one, and the services' would never match.
    expect(await templateError(["nats.auth.user=a", "nats.auth.password=$2a$10$abc"])).toMatch(/nats\/auth\/password/);
  });

  it("adds a service from one entry: Deployment, Job, route and database", async () => {
    const objs = await render("another service is one entry");
    const d = find(objs, "Deployment", "orderflow-audit");
    expect(podSpec(d).containers[0]!.image).toBe("localhost/orderflow/audit:0.1.0");
    find(objs, "HorizontalPodAutoscaler", "orderflow-audit");
    expect(byKind(objs, "Job").some((j) => j.metadata.name.startsWith("orderflow-audit-migrate-"))).toBe(true);
    const paths = (find(objs, "Ingress", "orderflow").spec as { rules: { http: { paths: { path: string }[] } }[] }).rules[0]!.http.paths.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(["/audit", "/events", "/users", "/orders"]));
    const url = (find(objs, "Secret", "orderflow-audit-db").stringData as Record<string, string>).DATABASE_URL;
    expect(url).toBe("postgres://orderflow@orderflow-postgres:5432/audit");
  });

  it("bundled Postgres: the URL Secrets hold no password; pods and Jobs read it from the Postgres Secret (its existingSecret too)", async () => {
    const passwordRefs = (objs: K8sObject[]) =>
      [...byKind(objs, "Deployment"), ...byKind(objs, "Job")].flatMap((o) =>
        [...podSpec(o).containers, ...(podSpec(o).initContainers ?? [])].map((c) => `${o.metadata.name}/${c.name}: ${JSON.stringify(c.env?.find((e) => e.name === "PGPASSWORD")?.valueFrom)}`),
      );
    const own = await template(["postgres.auth.existingSecret=my-pg"]);
    expect(byKind(own, "Secret").map((s) => s.metadata.name)).not.toContain("my-pg"); // the user's, not the chart's
    const refs = passwordRefs(own).filter((r) => !r.includes("orderflow-nats"));
    expect(refs.length).toBeGreaterThanOrEqual(9); // 3 Deployments, 3 Jobs with their create-database initContainers
    for (const r of refs) expect(r).toMatch(/: \{"secretKeyRef":\{"name":"my-pg","key":"password"\}\}$/);
    // Rendered twice (helm template, as Argo CD does: no lookup), the URL Secrets are the same.
    const urls = (objs: K8sObject[]) => byKind(objs, "Secret").filter((o) => o.metadata.name.endsWith("-db")).map((o) => o.stringData);
    expect(urls(await template(["postgres.auth.existingSecret=my-pg"]))).toEqual(urls(own));
    expect(urls(own)).toEqual(expect.arrayContaining([{ DATABASE_URL: "postgres://orderflow@orderflow-postgres:5432/users" }]));
    // An external database's URL is the password's only place: no PGPASSWORD beside it.
    expect(passwordRefs(await render("existingSecret")).every((r) => r.endsWith(": undefined"))).toBe(true);
  });

  it("extra env, volumes and mounts reach every service's pods and migration Job, beside the chart's own", async () => {
    const objs = await render("extra env, volumes and mounts");
    const specs = [...byKind(objs, "Deployment"), ...byKind(objs, "Job")].map((o) => [o.metadata.name, podSpec(o)] as const);
    expect(specs).toHaveLength(2 * SERVICES.length);
    for (const [name, spec] of specs) {
      const c = spec.containers[0]!;
      expect(c.env!.map((e) => e.name), name).toEqual(expect.arrayContaining(["DATABASE_URL", "NODE_EXTRA_CA_CERTS", "OTEL_TOKEN"]));
      expect(c.volumeMounts!.map((m) => m.mountPath), name).toEqual(["/tmp", "/etc/orderflow-ca"]);
      expect(spec.volumes!.map((v) => v.name), name).toEqual(["tmp", "ca"]);
    }
    expect(byKind(objs, "Deployment").map((d) => (podSpec(d) as { priorityClassName?: string }).priorityClassName)).toEqual(SERVICES.map(() => "high"));
    for (const name of ["DATABASE_URL", "METRICS_PORT", "NATS_TOKEN"]) {
      expect(await templateError([`serviceDefaults.extraEnv[0].name=${name}`, "serviceDefaults.extraEnv[0].value=x"])).toMatch(/extraEnv\/0\/name/);
    }
    expect(await templateError(["services.user-service.extraVolumeMounts[0].name=x", "services.user-service.extraVolumeMounts[0].mountPath=/tmp"])).toMatch(/mountPath/);
    // An external database's password may come from a Secret of its own.
    expect(await template(["postgres.deploy=false", "serviceDefaults.database.url=postgres://app@db:5432/x", "serviceDefaults.extraEnv[0].name=PGPASSWORD", "serviceDefaults.extraEnv[0].valueFrom.secretKeyRef.name=db", "serviceDefaults.extraEnv[0].valueFrom.secretKeyRef.key=password"])).not.toHaveLength(0);
  });

  it("nats.tls mounts the client's TLS Secret into every service pod and names its files; not with the bundled NATS", async () => {
    const objs = await render("NATS over TLS with a client certificate");
    const dir = "/etc/orderflow/nats-tls";
    for (const d of byKind(objs, "Deployment")) {
      const spec = podSpec(d);
      const c = spec.containers[0]!;
      expect(c.env!.filter((e) => e.name.startsWith("NATS_TLS_")), d.metadata.name).toEqual([
        { name: "NATS_TLS_CA_FILE", value: `${dir}/ca.crt` },
        { name: "NATS_TLS_CERT_FILE", value: `${dir}/tls.crt` },
        { name: "NATS_TLS_KEY_FILE", value: `${dir}/tls.key` },
      ]);
      expect(c.volumeMounts).toContainEqual({ name: "orderflow-nats-tls", mountPath: dir, readOnly: true });
      expect(spec.volumes).toContainEqual({ name: "orderflow-nats-tls", secret: { secretName: "nats-client-tls" } });
    }
    // The migration Jobs need no NATS.
    for (const j of byKind(objs, "Job")) expect(podSpec(j).volumes!.map((v) => v.name)).not.toContain("orderflow-nats-tls");
    // A private CA without a client certificate: only the CA's file.
    const caOnly = await template([...combos["NATS over TLS with a client certificate"]!.sets, "nats.tls.certKey=", "nats.tls.keyKey="]);
    expect(podSpec(byKind(caOnly, "Deployment")[0]!).containers[0]!.env!.filter((e) => e.name.startsWith("NATS_TLS_")).map((e) => e.name)).toEqual(["NATS_TLS_CA_FILE"]);
    // None of it without a Secret, as before.
    expect(podSpec(byKind(await render("defaults"), "Deployment")[0]!).containers[0]!.env!.filter((e) => e.name.startsWith("NATS_TLS_"))).toEqual([]);
    expect(await templateError(["nats.tls.existingSecret=nats-client-tls"])).toMatch(/nats\.tls is for an external NATS: the bundled one serves no TLS/);
    expect(await templateError([...combos["NATS over TLS with a client certificate"]!.sets, "nats.tls.keyKey="])).toMatch(/nats\/tls\/keyKey/);
    expect(await templateError(["serviceDefaults.extraVolumes[0].name=orderflow-nats-tls", "serviceDefaults.extraVolumes[0].emptyDir.medium=Memory"])).toMatch(/extraVolumes\/0\/name/);
    expect(await templateError(["serviceDefaults.extraVolumeMounts[0].name=x", `serviceDefaults.extraVolumeMounts[0].mountPath=${dir}`])).toMatch(/extraVolumeMounts\/0\/mountPath/);
    const tls = combos["NATS over TLS with a client certificate"]!.sets;
    // An upgrade with --reuse-values keeps the older chart's defaults, which have no key names.
    const reused = await template([...tls, "nats.tls.caKey=null", "nats.tls.certKey=null", "nats.tls.keyKey=null"]);
    expect(podSpec(byKind(reused, "Deployment")[0]!).containers[0]!.env!.filter((e) => e.name.startsWith("NATS_TLS_")).map((e) => e.value)).toEqual([`${dir}/ca.crt`, `${dir}/tls.crt`, `${dir}/tls.key`]);
    // The chart sets the three variables: the same names elsewhere would be a second entry (refused by a server-side apply) or overridden.
    for (const sets of [["config.NATS_TLS_CA_FILE=/x"], ["services.order-service.env.NATS_TLS_KEY_FILE=/x"], ["serviceDefaults.extraEnv[0].name=NATS_TLS_CERT_FILE", "serviceDefaults.extraEnv[0].value=/x"]]) {
      expect(await templateError([...tls, ...sets]), sets[0]).toMatch(/nats\.tls sets NATS_TLS_CA_FILE, NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE itself/);
    }
    // …and are left to the user without nats.tls.
    expect(await template(["config.NATS_TLS_CA_FILE=/etc/ca/ca.crt"])).not.toHaveLength(0);
    expect(await templateError([...tls, "nats.tls.caKey=", "nats.tls.certKey=", "nats.tls.keyKey="])).toMatch(/caKey, certKey and keyKey are all ""/);
    for (const bad of ["../ca.crt", "a b"]) expect(await templateError([...tls, `nats.tls.caKey=${bad}`]), bad).toMatch(/nats\/tls\/caKey/);
  });

  it("refuses a service's own stream settings or NATS namespace: the streams are shared, and the alerts read config's", async () => {
    for (const sets of [["services.order-service.env.STREAM_MAX_AGE_MS=3600000"], ["serviceDefaults.env.NATS_NAMESPACE=x"], ["services.user-service.extraEnv[0].name=DLQ_MAX_AGE_MS", "services.user-service.extraEnv[0].valueFrom.configMapKeyRef.name=limits", "services.user-service.extraEnv[0].valueFrom.configMapKeyRef.key=dlq"]]) {
      expect(await templateError(sets), sets[0]).toMatch(/services\.[a-z-]+ sets (STREAM_MAX_AGE_MS|NATS_NAMESPACE|DLQ_MAX_AGE_MS) for itself \(in its env or extraEnv, or through serviceDefaults\): it is a setting of the streams every service shares; set it in config/);
    }
    expect(await template(["config.STREAM_MAX_AGE_MS=3600000", "services.order-service.env.LOG_LEVEL=debug"])).not.toHaveLength(0);
  });

  it("runs each migration Job where its service's pods may run (node selector, tolerations, node affinity, priority), with pod labels and annotations of its own", async () => {
    const objs = await render("placement on a node pool");
    type Placed = PodSpec & { nodeSelector?: unknown; tolerations?: unknown; affinity?: Record<string, unknown>; priorityClassName?: string };
    const jobs = byKind(objs, "Job");
    expect(jobs).toHaveLength(SERVICES.length);
    for (const o of [...byKind(objs, "Deployment"), ...jobs]) {
      const spec = podSpec(o) as Placed;
      const meta = (o.spec as { template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> } } }).template.metadata;
      expect(spec.nodeSelector, o.metadata.name).toEqual({ pool: "apps" });
      expect(spec.tolerations, o.metadata.name).toEqual([{ key: "dedicated", operator: "Exists" }]);
      expect(spec.priorityClassName, o.metadata.name).toBe("high");
      expect(spec.affinity?.nodeAffinity, o.metadata.name).toEqual({ requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "zone", operator: "Exists" }] }] } });
      // The service's pod metadata stays off the Job (a sidecar a service pod opts into would
      // keep the Job from completing); the Job has its own.
      const job = o.kind === "Job";
      expect(meta.labels.team, o.metadata.name).toBe(job ? undefined : "shop");
      expect(meta.annotations?.["example.com/owner"], o.metadata.name).toBe(job ? undefined : "shop-team");
      expect(meta.labels.kind, o.metadata.name).toBe(job ? "job" : undefined);
      expect(meta.annotations?.["example.com/job"], o.metadata.name).toBe(job ? "migrate" : undefined);
      // Pod anti-affinity is about the service's own pods: the Job keeps out of it.
      expect(Object.keys(spec.affinity!), o.metadata.name).toEqual(o.kind === "Job" ? ["nodeAffinity"] : ["nodeAffinity", "podAntiAffinity"]);
    }
  });

  it("a changed NATS credential or database URL the chart writes rolls the pods that read it", async () => {
    const secrets = async (sets: string[]) =>
      Object.fromEntries(byKind(await template(sets), "Deployment").map((d) => [d.metadata.name, (d.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations["checksum/secrets"]]));
    const before = await secrets(["nats.auth.user=svc", "nats.auth.password=one"]);
    const rotated = await secrets(["nats.auth.user=svc", "nats.auth.password=two"]);
    expect(Object.keys(rotated).filter((n) => rotated[n] !== before[n])).toHaveLength(SERVICES.length);
    const url = await secrets(["nats.auth.user=svc", "nats.auth.password=one", "services.order-service.database.url=postgres://app@db:5432/orders"]);
    expect(Object.keys(url).filter((n) => url[n] !== before[n])).toEqual(["orderflow-order-service"]);
    // The bundled Postgres's URL is written by the chart too, from the database name and the user.
    const dbName = await secrets(["nats.auth.user=svc", "nats.auth.password=one", "services.order-service.database.name=orders_v2"]);
    expect(Object.keys(dbName).filter((n) => dbName[n] !== before[n])).toEqual(["orderflow-order-service"]);
    const pgUser = await secrets(["nats.auth.user=svc", "nats.auth.password=one", "postgres.auth.username=app"]);
    expect(Object.keys(pgUser).filter((n) => pgUser[n] !== before[n])).toHaveLength(SERVICES.length);
    // A URL beside an existingSecret is not written anywhere: nothing to roll for.
    const own = ["nats.auth.user=svc", "nats.auth.password=one", "services.order-service.database.existingSecret=orders-db"];
    expect(await secrets([...own, "services.order-service.database.url=postgres://app@db:5432/x"])).toEqual(await secrets(own));
  });

  it("checksums of a password or URL are salted with the release, so a Deployment's reader cannot test guesses against a bare sha256, and stay put from one render to the next", async () => {
    const annotations = async (sets: string[], namespace: string) =>
      Object.fromEntries(
        (await template(sets, { namespace })).flatMap((o) => {
          const a = (o.spec as { template?: { metadata?: { annotations?: Record<string, string> } } } | undefined)?.template?.metadata?.annotations;
          const sum = o.kind === "Deployment" ? a?.["checksum/secrets"] : o.kind === "StatefulSet" ? a?.["checksum/config"] : undefined;
          return sum ? [[o.metadata.name, sum]] : [];
        }),
      );
    const secret = ["nats.auth.user=svc", "nats.auth.password=hunter2", "services.order-service.database.url=postgres://app:pw@db:5432/orders"];
    const here = await annotations(secret, "shop");
    expect(await annotations(secret, "shop")).toEqual(here);
    // The same values in another namespace: nothing in the hashed values differs but the salt.
    const elsewhere = await annotations(secret, "shop2");
    for (const name of [...SERVICES.map((s) => `orderflow-${s}`), "orderflow-nats"]) expect(elsewhere[name], name).not.toBe(here[name]);
    // The password still rolls the NATS server it configures.
    expect((await annotations(["nats.auth.user=svc", "nats.auth.password=hunter3", secret[2]!], "shop"))["orderflow-nats"]).not.toBe(here["orderflow-nats"]);
  });

  it("a change to one service's configuration rolls that service's pods only", async () => {
    const checksums = async (sets: string[]) =>
      Object.fromEntries(byKind(await template(sets), "Deployment").map((d) => [d.metadata.name, (d.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations["checksum/config"]]));
    const before = await checksums([]);
    const after = await checksums(["services.order-service.env.LOG_LEVEL=debug"]);
    expect(Object.keys(after).filter((name) => after[name] !== before[name])).toEqual(["orderflow-order-service"]);
    const everyone = await checksums(["config.LOG_LEVEL=debug"]);
    expect(Object.keys(everyone).filter((name) => everyone[name] !== before[name])).toHaveLength(SERVICES.length);
  });

  it("serves metrics on their own port: METRICS_PORT, a `metrics` port on pods and Services that the ServiceMonitor scrapes and only Prometheus may reach", async () => {
    const objs = await render("NATS token auth and ServiceMonitor");
    for (const svc of SERVICES) {
      expect((find(objs, "ConfigMap", `orderflow-${svc}`).data as Record<string, string>).METRICS_PORT).toBe("9464");
      expect((find(objs, "Service", `orderflow-${svc}`).spec as { ports: unknown[] }).ports).toContainEqual({ name: "metrics", port: 9464, targetPort: "metrics", protocol: "TCP" });
      expect((find(objs, "ServiceMonitor", `orderflow-${svc}`).spec as { endpoints: unknown[] }).endpoints).toEqual([{ port: "metrics", path: "/metrics", interval: "30s" }]);
      const ingress = (find(objs, "NetworkPolicy", `orderflow-${svc}`).spec as { ingress: { from: unknown[]; ports: { port: string }[] }[] }).ingress;
      expect(ingress.find((r) => r.ports[0]!.port === "metrics")?.from).toEqual([{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }]);
      // The Ingress side never reaches it.
      expect(ingress.find((r) => r.ports[0]!.port === "http")?.ports).toEqual([{ port: "http", protocol: "TCP" }]);
    }
    const off = await template(["metrics.enabled=false"]);
    expect(byKind(off, "ConfigMap").some((c) => "METRICS_PORT" in (c.data as Record<string, string>))).toBe(false);
    expect(await templateError(["metrics.enabled=false", "serviceMonitor.enabled=true"])).toMatch(/serviceMonitor.enabled needs metrics.enabled/);
    expect(await templateError(["config.METRICS_PORT=1"])).toMatch(/invalid propertyName 'METRICS_PORT'/);
  });

  it("ships its alerts as a PrometheusRule: valid PromQL over metrics the services export, scoped to the release's Services", async () => {
    type Rule = { alert: string; expr: string; for: string; labels: { severity: string }; annotations: Record<string, string> };
    const rulesOf = (objs: K8sObject[]) => (byKind(objs, "PrometheusRule")[0]?.spec as { groups: { rules: Rule[] }[] } | undefined)?.groups.flatMap((g) => g.rules);
    expect(byKind(await render("defaults"), "PrometheusRule")).toHaveLength(0);
    const objs = await template(["serviceMonitor.enabled=true", "prometheusRule.enabled=true", "prometheusRule.labels.release=kube-prometheus-stack"], { release: "shop", namespace: "store" });
    expect(byKind(objs, "PrometheusRule")[0]!.metadata.labels).toMatchObject({ release: "kube-prometheus-stack" });
    const rules = rulesOf(objs)!;
    const downFor = SERVICES.map((x) => `shop-orderflow-${x}`).sort();
    expect(rules.map((r) => r.alert)).toEqual(["OrderflowEventsNearExpiry", ...downFor.map(() => "OrderflowServiceDown"), "OrderflowConsumerBehind", "OrderflowOutboxBacklog", "OrderflowDeadLetters", "OrderflowDependencyDown", "OrderflowHttpErrors"]);
    // A service with no pod up reports no gauge at all: each has an alert on its absence.
    expect(rules.filter((r) => r.alert === "OrderflowServiceDown").map((r) => [r.expr, r.labels])).toEqual(
      downFor.map((job) => [`absent(up{namespace="store", job="${job}"} == 1)`, { severity: "critical", job }]),
    );
    // Probes are no server errors: a pod not ready answers /readyz 503 (OrderflowDependencyDown says why).
    expect(rules.at(-1)!.expr).toContain('status=~"5..", route!~"draining|/readyz|/healthz"');
    const services = byKind(objs, "Service").map((svc) => svc.metadata.name).filter((name) => SERVICES.some((x) => name === `shop-orderflow-${x}`));
    expect(services).toHaveLength(SERVICES.length);
    for (const rule of rules) {
      // A renamed series would leave an alert that never fires.
      expectPromQL(rule.expr, rule.alert);
      // Scoped to this release: its namespace, and a job (the ServiceMonitor's Service) of its own.
      for (const [, selector] of rule.expr.matchAll(/\{([^}]*)\}/g)) {
        expect(selector, rule.alert).toContain('namespace="store"');
        const [, op, pattern] = /job(=~?)"([^"]+)"/.exec(selector!)!;
        const jobs = new RegExp(`^(?:${op === "=~" ? pattern : pattern!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")})$`);
        const matched = services.filter((name) => jobs.test(name));
        expect(op === "=~" ? matched : matched.length, `${rule.alert}: ${selector}`).toEqual(op === "=~" ? services : 1);
        expect(jobs.test("shop-orderflow-nats") || jobs.test("other-orderflow-user-service"), `${rule.alert}: ${selector}`).toBe(false);
      }
      expect(["warning", "critical"]).toContain(rule.labels.severity);
      expect(rule.annotations.summary).toBeTruthy();
    }
    // Near expiry is half the streams' max_age, in seconds; with no max_age nothing expires, and no such alert.
    expect(rules[0]!.expr).toMatch(/ > 302400$/);
    const on = ["serviceMonitor.enabled=true", "prometheusRule.enabled=true"];
    const custom = rulesOf(await template([...on, "config.STREAM_MAX_AGE_MS=86400000", "prometheusRule.consumerBehindSeconds=120", "prometheusRule.httpErrorRatio=0.01"]))!;
    expect(custom.find((r) => r.alert === "OrderflowEventsNearExpiry")!.expr).toMatch(/ > 43200$/);
    expect(custom.find((r) => r.alert === "OrderflowConsumerBehind")!.expr).toMatch(/ > 120$/);
    expect(custom.find((r) => r.alert === "OrderflowHttpErrors")!.expr).toMatch(/ > 0.01$/);
    // A number from a values file, which Helm reads as a float (2.592e+09 once made a string).
    const dir = mkdtempSync(join(tmpdir(), "orderflow-rule-"));
    try {
      writeFileSync(join(dir, "values.yaml"), "config:\n  STREAM_MAX_AGE_MS: 2592000000\n");
      const fromFile = rulesOf(await template(on, { valuesFiles: [join(dir, "values.yaml")] }))!;
      expect(fromFile.find((r) => r.alert === "OrderflowEventsNearExpiry")?.expr).toMatch(/ > 1296000$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(rulesOf(await template([...on, "config.STREAM_MAX_AGE_MS=0"]))!.map((r) => r.alert)).not.toContain("OrderflowEventsNearExpiry");
    expect(await templateError(["prometheusRule.enabled=true"])).toMatch(/prometheusRule.enabled needs serviceMonitor.enabled/);
    for (const bad of ["consumerBehindSeconds=0", "httpErrorRatio=0", "httpErrorRatio=2", "outboxBacklog=-1"]) expect(await templateError([`prometheusRule.${bad}`]), bad).toMatch(/prometheusRule/);
  });

  it("ships a Grafana dashboard for the sidecar: valid PromQL over the series the services export, for a chosen namespace and services", async () => {
    expect(byKind(await render("defaults"), "ConfigMap").map((c) => c.metadata.name)).not.toContain("orderflow-dashboard");
    const objs = await template(["serviceMonitor.enabled=true", "grafanaDashboard.enabled=true", "grafanaDashboard.annotations.grafana_folder=shop"]);
    const cm = find(objs, "ConfigMap", "orderflow-dashboard");
    expect(cm.metadata.labels).toMatchObject({ grafana_dashboard: "1" });
    expect(cm.metadata.annotations).toEqual({ grafana_folder: "shop" });
    type Panel = { type: string; title: string; datasource?: { uid: string }; targets?: { expr: string }[] };
    const dashboard = JSON.parse((cm.data as Record<string, string>)["orderflow.json"]!) as { uid: string; panels: Panel[]; templating: { list: { name: string }[] } };
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(["datasource", "namespace", "job"]);
    const graphs = dashboard.panels.filter((p) => p.type !== "row");
    expect(graphs.length).toBeGreaterThanOrEqual(10);
    const read = new Set<string>();
    for (const panel of graphs) {
      expect(panel.datasource?.uid, panel.title).toBe("${datasource}");
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const { expr } of panel.targets!) {
        expect(expr, panel.title).toContain('namespace="$namespace", job=~"$job"');
        // Grafana's variables, as it substitutes them, so the grammar sees a query.
        const query = expr.replaceAll("$__rate_interval", "5m").replaceAll("$namespace", "shop").replaceAll("$job", ".+");
        expectPromQL(query, panel.title);
        for (const [name] of query.matchAll(/\b(?:orderflow|process|nodejs)_[a-z0-9_]+/g)) read.add(name.replace(/_(bucket|count|sum)$/, ""));
      }
    }
    // Every gauge and counter the services export has a panel.
    expect([...exportedSeries].filter((n) => n.startsWith("orderflow_") && !read.has(n))).toEqual([]);
    expect(await templateError(["grafanaDashboard.enabled=true"])).toMatch(/grafanaDashboard.enabled needs serviceMonitor.enabled/);
    // With no label the sidecar never finds it (and the ConfigMap would not render).
    expect(await templateError(["serviceMonitor.enabled=true", "grafanaDashboard.enabled=true", "grafanaDashboard.labels.grafana_dashboard=null"])).toMatch(/grafanaDashboard\/labels/);
  });

  it("production values: Postgres egress to the CloudNativePG pods of the release's namespace, where their Secrets are", async () => {
    const objs = await render("production values");
    const policy = find(objs, "NetworkPolicy", "orderflow-user-service");
    const rules = (policy.spec as { egress: { to: Record<string, unknown>[]; ports: { port: number }[] }[] }).egress;
    const postgres = rules.find((r) => r.ports.some((p) => p.port === 5432))!;
    expect(postgres.to).toEqual([{ podSelector: { matchExpressions: [{ key: "cnpg.io/cluster", operator: "In", values: ["users-db", "orders-db", "event-log-db"] }] } }]);
    // Monitoring as kube-prometheus-stack selects it, and a year of history in the event log.
    for (const kind of ["ServiceMonitor", "PrometheusRule"]) for (const o of byKind(objs, kind)) expect(o.metadata.labels, `${kind} ${o.metadata.name}`).toMatchObject({ release: "kube-prometheus-stack" });
    expect([byKind(objs, "ServiceMonitor").length, byKind(objs, "PrometheusRule").length]).toEqual([SERVICES.length, 1]);
    expect(find(objs, "ConfigMap", "orderflow-dashboard").metadata.labels).toMatchObject({ grafana_dashboard: "1" });
    expect((find(objs, "ConfigMap", "orderflow-event-log").data as Record<string, string>).EVENTLOG_MAX_AGE_MS).toBe("31536000000");
  });

  it("existingSecret: no chart Secret for the database, refs point at the user's Secret and key", async () => {
    const objs = await render("existingSecret");
    expect(byKind(objs, "Secret").map((s) => s.metadata.name)).toEqual([]);
    expect(byKind(objs, "StatefulSet")).toHaveLength(1); // NATS only
    const env = podSpec(find(objs, "Deployment", "orderflow-order-service")).containers[0]!.env!;
    expect(env.find((e) => e.name === "DATABASE_URL")?.valueFrom).toEqual({ secretKeyRef: { name: "order-service-db", key: "uri" } });
    expect(env.find((e) => e.name === "NATS_PASSWORD")?.valueFrom).toEqual({ secretKeyRef: { name: "nats-creds", key: "NATS_PASSWORD", optional: true } });
  });

  it("replicas 3: fixed replica count without HPA, STREAM_REPLICAS 3", async () => {
    const objs = await render("replicas 3 without HPA");
    expect(byKind(objs, "HorizontalPodAutoscaler")).toHaveLength(0);
    for (const d of byKind(objs, "Deployment")) expect((d.spec as { replicas: number }).replicas).toBe(3);
    expect((find(objs, "ConfigMap", "orderflow-user-service").data as Record<string, string>).STREAM_REPLICAS).toBe("3");
  });

  it("refuses a service named like one of the chart's own objects, which would be rendered twice", async () => {
    // Every name the chart gives an object of its own, found in the render, not listed here.
    const owned = new Set<string>();
    for (const combo of ["defaults", "NATS token auth and ServiceMonitor"]) {
      for (const o of await render(combo)) {
        const suffix = o.metadata.name.replace(/^orderflow-?/, "");
        if (suffix && !SERVICES.some((svc) => suffix === svc || suffix.startsWith(`${svc}-`))) owned.add(suffix);
      }
    }
    expect([...owned]).toEqual(expect.arrayContaining(["nats", "postgres", "migration"]));
    for (const name of owned) {
      const objs = await template([`services.${name}.routes={/${name}}`, "nats.auth.token=t", "serviceMonitor.enabled=true"]).catch((e: Error) => e.message);
      if (typeof objs === "string") {
        expect(objs, name).toMatch(new RegExp(`invalid propertyName '${name}'[\\s\\S]*a name other than nats, .*, which the chart`));
      } else {
        const names = objs.map((o) => `${o.kind}/${o.metadata.name}`);
        expect(new Set(names).size, `service ${name}: duplicate objects`).toBe(names.length);
      }
    }
  });

  it("resources take any resource name Kubernetes does, and a null drops a default's key, in serviceDefaults or a service", async () => {
    const objs = await template([
      "serviceDefaults.resources.limits.ephemeral-storage=1Gi",
      "services.order-service.resources.requests.hugepages-2Mi=64Mi",
      "services.order-service.resources.limits.hugepages-2Mi=64Mi",
      "services.order-service.resources.limits.example\\.com/gpu=1",
      // Helm drops a chart default under a null; the chart's own merge does so for a service's entry.
      "serviceDefaults.resources.limits.cpu=null",
      "services.user-service.resources.requests.cpu=null",
      // Nothing to drop: rendered as nothing, not as null.
      "services.event-log.resources.limits.example\\.com/gpu=null",
    ]);
    expect(await validateObjects(objs)).toEqual([]);
    const resources = (kind: string, prefix: string) => podSpec(objs.find((o) => o.kind === kind && o.metadata.name.startsWith(prefix))!).containers[0]!.resources;
    for (const kind of ["Deployment", "Job"]) {
      expect(resources(kind, "orderflow-order-service"), kind).toEqual({
        requests: { cpu: "50m", memory: "192Mi", "hugepages-2Mi": "64Mi" },
        limits: { memory: "384Mi", "ephemeral-storage": "1Gi", "hugepages-2Mi": "64Mi", "example.com/gpu": 1 },
      });
      expect(resources(kind, "orderflow-user-service"), kind).toEqual({ requests: { memory: "192Mi" }, limits: { memory: "384Mi", "ephemeral-storage": "1Gi" } });
      expect(resources(kind, "orderflow-event-log"), kind).toEqual({ requests: { cpu: "50m", memory: "192Mi" }, limits: { memory: "384Mi", "ephemeral-storage": "1Gi" } });
    }
    // Still quantities, under names Kubernetes takes.
    expect(await templateError(["serviceDefaults.resources.limits.ephemeral-storage=lots"])).toMatch(/resources\/limits\/ephemeral-storage/);
    expect(await templateError(["serviceDefaults.resources.limits.-gpu=1"])).toMatch(/invalid propertyName '-gpu'/);
  });

  it("NOTES.txt port-forwards each service to a local port of its own, npm start's for the shipped ones", async () => {
    const notes = async (sets: string[]) => {
      const args = ["install", "orderflow", CHART, "--dry-run=client", "--namespace", "orderflow"];
      for (const s of sets) args.push("--set", s);
      const { stdout } = await run(helm(), args);
      const lines = stdout.slice(stdout.indexOf("NOTES:")).matchAll(/^ {2}(\S+): kubectl .* port-forward svc\/\S+ (\d+):\d+$/gm);
      return Object.fromEntries([...lines].map((m) => [m[1]!, Number(m[2])]));
    };
    const ports = await notes([]);
    expect(Object.keys(ports).sort()).toEqual([...SERVICES].sort());
    // The ports the README's curl examples use, and skaffold dev forwards.
    for (const svc of SERVICES) {
      const pkg = JSON.parse(readFileSync(repoPath(`services/${svc}/package.json`), "utf8")) as { orderflow: { port: number } };
      expect(ports[svc], svc).toBe(pkg.orderflow.port);
    }
    const more = Object.values(await notes(["services.audit.routes={/audit}", "services.billing.routes={/billing}"]));
    expect(new Set(more).size, JSON.stringify(more)).toBe(more.length);
  });

  it("values.schema.json turns wrong values into clear install-time errors", async () => {
    expect(await templateError(["config.LOG_LEVEL=loud"])).toMatch(/LOG_LEVEL/);
    // Every pod of every service would exit at start with it (the shared config map feeds them all).
    for (const bad of ["250%", "1.5", "1001"]) expect(await templateError([`config.HEAP_GROWING_PERCENT=${bad}`])).toMatch(/HEAP_GROWING_PERCENT/);
    expect(await templateError(["config.NATS_INBOX_PREFIX=_INBOX.>"])).toMatch(/NATS_INBOX_PREFIX/);
    expect(await templateError(["nats.deploy=false"])).toMatch(/nats\/url/);
    expect(await templateError(["services.user-service.routes={users}"])).toMatch(/routes/);
    expect(await templateError(["services.user-service.replicas=2"])).toMatch(/additional properties 'replicas' not allowed/);
    expect(await templateError(["services.user-service.env.DATABASE_URL=x"])).toMatch(/env/);
    // Keys the chart sets itself would be written twice into the ConfigMap; credentials would be
    // written there in plain text.
    for (const key of ["HOST", "SHUTDOWN_TIMEOUT_MS", "NATS_PASSWORD", "NATS_TOKEN", "DATABASE_URL"]) {
      expect(await templateError([`config.${key}=x`])).toMatch(new RegExp(`invalid propertyName '${key}'`));
      expect(await templateError([`services.order-service.env.${key}=x`])).toMatch(new RegExp(`invalid propertyName '${key}'`));
    }
    expect(await templateError(["nats.auth.existingSecretType=cert"])).toMatch(/existingSecretType/);
    expect(await templateError(["postgres.deploy=false"])).toMatch(/database\.url or \.existingSecret is required/);
    // Typos and values Kubernetes would take and regret: a PDB that blocks every drain, a
    // liveness probe that restarts pods whenever a dependency is down.
    expect(await templateError(["tmpVolume.sizeLimt=1Gi"])).toMatch(/additional properties 'sizeLimt' not allowed/);
    expect(await templateError(["serviceDefaults.resources.requests.memory=lots"])).toMatch(/resources\/requests\/memory/);
    expect(await templateError(["services.order-service.resources.limits.cpu=fast"])).toMatch(/resources\/limits\/cpu/);
    for (const bad of ["0", "0%"]) expect(await templateError([`serviceDefaults.podDisruptionBudget.maxUnavailable=${bad}`])).toMatch(/maxUnavailable/);
    expect(await templateError(["serviceDefaults.probes.liveness.path=/readyz"])).toMatch(/liveness\/path/);
    expect(await template(["serviceDefaults.podDisruptionBudget.maxUnavailable=25%", "serviceDefaults.resources.requests.cpu=0.5"])).not.toHaveLength(0);
    // Settings every pod would exit 2 on (a crash loop) are refused at install, with the service's own ranges.
    for (const bad of ["MAX_DELIVER=1", "MAX_DELIVER=abc", "RETRY_DELAYS_MS=oops", "STREAM_MAX_AGE_MS=1000", "DLQ_MAX_AGE_MS=1000", "EVENTLOG_MAX_AGE_MS=30000", "DATABASE_POOL_SIZE=0", "OUTBOX_POLL_MS=-5", "OUTBOX_POLL_MS=3000000000"]) {
      expect(await templateError([`config.${bad}`]), bad).toMatch(new RegExp(`config/${bad.split("=")[0]}`));
    }
    expect(await templateError(["services.user-service.env.MAX_DELIVER=0"])).toMatch(/env\/MAX_DELIVER/);
    expect(await templateError(["shutdown.timeoutMs=3000000000"])).toMatch(/timeoutMs/);
    // nats.url as the services take it: NATS URLs or host:port, comma-separated; nothing else.
    expect(await template(["nats.deploy=false", "nats.url=nats-0.nats:4222\\, tls://nats-1.nats:4222"])).not.toHaveLength(0);
    for (const bad of ["http://x:1", "nats://a:1\\,", "ws://nats:8080"]) expect(await templateError(["nats.deploy=false", `nats.url=${bad}`]), bad).toMatch(/nats\/url/);
    expect(await template(["config.STREAM_MAX_AGE_MS=0", "config.DLQ_MAX_AGE_MS=2592000000", "config.RETRY_DELAYS_MS=1000\\, 5000", "config.MAX_DELIVER=100", "config.OUTBOX_POLL_MS=2147483647"])).not.toHaveLength(0);
    for (const bad of ["STREAM_MAX_AGE_MS=9500000000000", "DLQ_MAX_AGE_MS=9500000000000", "OUTBOX_POLL_MS=2147483648"]) expect(await templateError([`config.${bad}`]), bad).toMatch(/config\//);
    // Helm drops a default under a null before it validates: without `required`, these rendered a
    // NetworkPolicy open to every source (`from: null`) or to all egress, or failed on a nil pointer.
    for (const [bad, where] of [
      ["networkPolicy.allowIngressFrom", "/networkPolicy': missing property 'allowIngressFrom'"],
      ["networkPolicy.dns", "/networkPolicy': missing property 'dns'"],
      ["serviceDefaults.probes.liveness", "/serviceDefaults/probes': missing property 'liveness'"],
      ["metrics.port", "/metrics': missing property 'port'"],
      ["image.pullPolicy", "/image': missing property 'pullPolicy'"],
    ]) {
      expect(await templateError([`${bad}=null`]), bad).toContain(`at '${where}`);
    }
    // Every pod would exit at start: the metrics server cannot listen on the HTTP port.
    expect(await templateError(["metrics.port=3000"])).toMatch(/services\.event-log\.containerPort and metrics\.port are both 3000/);
    expect(await templateError(["services.order-service.containerPort=9464"])).toMatch(/services\.order-service\.containerPort and metrics\.port are both 9464/);
    expect(await template(["metrics.enabled=false", "metrics.port=3000"])).not.toHaveLength(0);
    // Values added since a release are absent under `helm upgrade --reuse-values` (the old chart's
    // values are used): not required, and rendered as before they existed.
    const reused = await template([...combos["external NATS and Postgres (deps off)"]!.sets, "migrationHooks=null", "listenAddress=null", "tmpVolume.sizeLimit=null", "prometheusRule=null", "grafanaDashboard=null", "nats.tls=null"]);
    for (const job of byKind(reused, "Job")) expect(job.metadata.annotations?.["helm.sh/hook"], job.metadata.name).toBe("pre-install,pre-upgrade");
    expect(byKind(reused, "ConfigMap").filter((c) => (c.data as Record<string, string>).PORT).map((c) => (c.data as Record<string, string>).HOST)).toEqual(SERVICES.map(() => "0.0.0.0"));
    expect(podSpec(find(reused, "Deployment", "orderflow-user-service")).volumes!.find((v) => v.name === "tmp")!.emptyDir).toEqual({}); // null: no cap on /tmp
    // IPv6 single-stack clusters: the services listen on :: (HOST), chosen here since config.HOST is the chart's.
    expect(byKind(await template(["listenAddress=::"]), "ConfigMap").filter((c) => c.metadata.name.startsWith("orderflow-") && (c.data as Record<string, string>).PORT).map((c) => (c.data as Record<string, string>).HOST)).toEqual(SERVICES.map(() => "::"));
    expect(await templateError(["listenAddress=localhost"])).toMatch(/listenAddress/);
    // Names Kubernetes would refuse (a Service's over 63, a StatefulSet's over 52) or that would
    // collide, said before anything is applied; other objects take up to 253 characters.
    const long = (n: number) => `fullnameOverride=${"f".repeat(n)}`;
    expect(await templateError([long(44)])).toMatch(new RegExp(`StatefulSet name f{44}-postgres would be 53 characters, over 52 .*fullnameOverride`));
    const bundled = await template([long(43)]);
    expect(Math.max(...byKind(bundled, "Service").map((o) => o.metadata.name.length))).toBeLessThanOrEqual(63);
    const external = await template([long(55), ...combos["external NATS and Postgres (deps off)"]!.sets]);
    expect(Math.max(...external.map((o) => o.metadata.name.length))).toBeGreaterThan(63); // a Secret, say: allowed
    expect(Math.max(...byKind(external, "Service").map((o) => o.metadata.name.length))).toBeLessThanOrEqual(63);
    expect(await templateError([long(55), ...combos["external NATS and Postgres (deps off)"]!.sets, "services.order-servicex.routes={/x}"])).toMatch(/services order-service and order-servicex would both be named f{55}-order-s /);
    // A map a null may still clear (Helm merges a {} into the default): OpenShift assigns the uid.
    const openshift = byKind(await template(["podSecurityContext.runAsUser=null", "podSecurityContext.runAsGroup=null"]), "Deployment");
    expect(podSpec(openshift[0]!).securityContext).toEqual({ runAsNonRoot: true, fsGroup: 1000, seccompProfile: { type: "RuntimeDefault" } });
    // Whole numbers from YAML (float64 to Helm) reach the services in digits, not as 2.592e+09.
    const values = join(tempDir("of-values-"), "big.yaml");
    writeFileSync(values, "config:\n  STREAM_MAX_AGE_MS: 2592000000\n  IDEMPOTENCY_TTL_MS: 86400000\n");
    const big = byKind(await template([], { valuesFiles: [values] }), "ConfigMap").map((c) => c.data as Record<string, string>);
    expect(big[0]).toMatchObject({ STREAM_MAX_AGE_MS: "2592000000", IDEMPOTENCY_TTL_MS: "86400000" });
  });
});
