import { fileURLToPath } from "node:url";
import { z } from "zod";
import { baseConfigSchema, createLogger, loadConfig, runMigrations } from "@orderflow/shared";

// Entry point for the Helm pre-install/pre-upgrade Job: applies migrations, then exits.
const schema = baseConfigSchema.pick({ DATABASE_URL: true, LOG_LEVEL: true });
try {
  const config: z.infer<typeof schema> = loadConfig(schema, process.env);
  const log = createLogger({ service: "user-service", level: config.LOG_LEVEL });
  await runMigrations({ databaseUrl: config.DATABASE_URL, migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)), log });
} catch (err) {
  process.stderr.write(`user-service migrate: ${(err as Error).message}\n`);
  process.exit(1);
}
