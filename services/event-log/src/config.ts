import { baseConfigSchema, envInt } from "@orderflow/shared";
import type { z } from "zod";

export const configSchema = baseConfigSchema.extend({
  PORT: envInt(1, 65535).default(3003),
  /** Messages stored per insert. */
  INGEST_BATCH_SIZE: envInt(1, 1000).default(200),
  /** How often the live tail looks for rows other replicas stored (its own wake it at once). */
  TAIL_POLL_MS: envInt(50, 5000).default(250),
});

export type Config = z.infer<typeof configSchema>;
