import { baseConfigSchema, loadConfigOrExit, type BaseConfig } from "../config/config.js";
import type { Db } from "../db/database.js";
import type { ServiceApp } from "../http/app.js";
import { createLogger, type Logger } from "../logger/index.js";
import type { Names } from "../nats/names.js";
import { runService, type RunningService, type ServiceSpec } from "./service.js";

export interface ServiceDefinition extends Pick<ServiceSpec, "name" | "version" | "migrationsFolder" | "streams" | "consumers"> {
  buildApp(deps: { db: Db; published: () => void; names: Names; log: Logger; config: BaseConfig }): ServiceApp;
  periodic?(config: BaseConfig): NonNullable<ServiceSpec["periodic"]>;
}

/**
 * What a service's `main.ts` calls: reads the environment (exit 2 naming each bad variable),
 * creates the logger and runs the service; an unexpected start-up failure exits 1 with its stack.
 */
export function serviceMain(def: ServiceDefinition, env: Record<string, string | undefined>): Promise<RunningService> {
  const config = loadConfigOrExit(baseConfigSchema, env, def.name);
  const log = createLogger({ service: def.name, level: config.LOG_LEVEL, instance: config.SERVICE_INSTANCE });
  return runService({
    ...def,
    config,
    log,
    buildApp: (deps) => def.buildApp({ ...deps, log, config }),
    periodic: def.periodic?.(config),
  }).catch((err: unknown) => {
    process.stderr.write(`${def.name}: failed to start: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
