import type { z } from "zod";
import { baseConfigSchema, loadConfigOrExit, type BaseConfig } from "../config/config.js";
import type { Db } from "../db/database.js";
import type { ServiceApp } from "../http/app.js";
import { createLogger, type Logger } from "../logger/index.js";
import { StartupError } from "../errors/index.js";
import type { Names } from "../nats/names.js";
import type { OutboxMessage } from "../outbox/handoff.js";
import { applyHeapGrowingPercent } from "./node-options.js";
import { runService, type RunningService, type ServiceSpec, type Worker, type WorkerContext } from "./service.js";

export interface ServiceDefinition<C extends BaseConfig = BaseConfig>
  extends Pick<ServiceSpec, "name" | "version" | "migrationsFolder" | "streams" | "consumers" | "onShuttingDown" | "outbox"> {
  /** A service with settings of its own passes `baseConfigSchema.extend({...})`. */
  configSchema?: z.ZodType<C>;
  buildApp(deps: { db: Db; published: (messages: OutboxMessage[]) => void; names: Names; log: Logger; config: C }): ServiceApp;
  workers?(ctx: WorkerContext, config: C): Worker[];
  periodic?(config: C): NonNullable<ServiceSpec["periodic"]>;
}

/**
 * What a service's `main.ts` calls: reads the environment (exit 2 naming each bad variable),
 * tunes the heap, creates the logger and runs the service; an unexpected start-up failure exits 1 with its stack.
 */
export function serviceMain<C extends BaseConfig = BaseConfig>(def: ServiceDefinition<C>, env: Record<string, string | undefined>): Promise<RunningService> {
  const config = loadConfigOrExit(def.configSchema ?? baseConfigSchema, env, def.name) as C;
  applyHeapGrowingPercent(config.HEAP_GROWING_PERCENT);
  const log = createLogger({ service: def.name, level: config.LOG_LEVEL, instance: config.SERVICE_INSTANCE });
  return runService({
    ...def,
    config,
    log,
    buildApp: (deps) => def.buildApp({ ...deps, log, config }),
    workers: def.workers ? (ctx) => def.workers!(ctx, config) : undefined,
    periodic: def.periodic?.(config),
  }).catch((err: unknown) => {
    // An operator's mistake is said in a sentence; anything else with its stack, for a bug report.
    process.stderr.write(`${def.name}: failed to start: ${err instanceof StartupError ? err.message : ((err as Error).stack ?? String(err))}\n`);
    process.exit(1);
  });
}
