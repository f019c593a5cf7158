import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { eventCatalog } from "@orderflow/shared";
import { repoRoot } from "@orderflow/shared/testing";
import { localServices } from "../../scripts/local-services.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of the repository's service manifests (package.json and src/replay.ts only), plus `extra` services. */
function tree(extra: Record<string, object>): string {
  const root = mkdtempSync(join(tmpdir(), "of-local-services-"));
  dirs.push(root);
  for (const name of localServices(repoRoot, {}).map((s) => s.name)) {
    mkdirSync(join(root, "services", name, "src"), { recursive: true });
    cpSync(join(repoRoot, "services", name, "package.json"), join(root, "services", name, "package.json"));
    cpSync(join(repoRoot, "services", name, "src", "replay.ts"), join(root, "services", name, "src", "replay.ts"));
  }
  for (const [name, manifest] of Object.entries(extra)) {
    mkdirSync(join(root, "services", name), { recursive: true });
    writeFileSync(join(root, "services", name, "package.json"), JSON.stringify(manifest));
  }
  return root;
}

describe("the services npm start and npm run replay run", () => {
  it("are this repository's services, with the documented ports and variables", () => {
    const found = localServices(repoRoot, { ORDER_PORT: "4002", EVENTLOG_DATABASE_URL: "postgres://h/log" });
    expect(found.map((s) => [s.name, s.envPrefix, s.port, s.databaseUrl, s.replays])).toEqual([
      ["user-service", "USER", "3001", undefined, true],
      ["order-service", "ORDER", "4002", undefined, true],
      ["event-log", "EVENTLOG", "3003", "postgres://h/log", true],
    ]);
  });

  it("pick up a new service from its package.json alone, its variables named after it unless it names them", () => {
    const root = tree({
      "notification-service": { name: "@orderflow/notification-service", orderflow: { port: 3004 } },
      "audit": { name: "@orderflow/audit", orderflow: { port: 3005, envPrefix: "AUDIT_LOG" } },
      "not-a-service": { name: "helper" },
    });
    const found = localServices(root, { NOTIFICATION_SERVICE_PORT: "4004", AUDIT_LOG_DATABASE_URL: "postgres://h/audit" });
    expect(found.slice(3).map((s) => [s.name, s.envPrefix, s.port, s.databaseUrl, s.replays])).toEqual([
      ["notification-service", "NOTIFICATION_SERVICE", "4004", undefined, false],
      ["audit", "AUDIT_LOG", "3005", "postgres://h/audit", false],
    ]);
  });

  it("refuse a malformed block or a clash, naming the file or the services", () => {
    const services = (extra: Record<string, object>, env: NodeJS.ProcessEnv = {}) => () => localServices(tree(extra), env);
    expect(services({ bad: { orderflow: { port: "3009" } } })).toThrow(/services\/bad\/package\.json: "orderflow\.port" must be a port number/);
    expect(services({ bad: { orderflow: null } })).toThrow(/services\/bad\/package\.json: "orderflow" must be an object/);
    expect(services({ bad: { orderflow: { port: 3009, envPrefix: "lower" } } })).toThrow(/"orderflow\.envPrefix" must be upper-case/);
    expect(services({ "3d": { orderflow: { port: 3009 } } })).toThrow(/the prefix taken from the folder name \(set "orderflow\.envPrefix"\) must be upper-case/);
    expect(services({ metrics: { orderflow: { port: 3009 } } })).toThrow(/METRICS would clash with npm start's own METRICS_\* variables/);
    expect(services({ twin: { orderflow: { port: 3001 } } })).toThrow(/(twin and user-service|user-service and twin) have the same port 3001/);
    expect(services({ twin: { orderflow: { port: 3009, envPrefix: "ORDER" } } })).toThrow(/have the same envPrefix ORDER/);
    expect(services({}, { USER_PORT: "03002" })).toThrow(/(user-service and order-service|order-service and user-service) have the same port 3002/);
    for (const port of ["0x10", "0", "99999"]) expect(services({}, { USER_PORT: port })).toThrow(/USER_PORT must be a port number \(1-65535\)/);
  });

  it("name the file of a package.json that is not JSON", () => {
    const root = tree({});
    writeFileSync(join(root, "services", "user-service", "package.json"), "{ nope");
    expect(() => localServices(root, {})).toThrow(/services\/user-service\/package\.json: /);
  });

  it("include every producer the event catalog names, which is how a service's streams are found", () => {
    const services = localServices(repoRoot, {}).map((s) => s.name);
    for (const e of Object.values(eventCatalog)) expect(services.concat("every service"), e.subject).toContain(e.producer);
  });
});
