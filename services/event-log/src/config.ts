import { baseConfigSchema } from "@orderflow/shared";
import { z } from "zod";

export const configSchema = baseConfigSchema.extend({
  PORT: z.coerce.number().int().min(1).max(65535).default(3003),
  /** Messages stored per insert. */
  INGEST_BATCH_SIZE: z.coerce.number().int().min(1).max(1000).default(200),
  /** How often the live tail looks for rows other replicas stored (its own wake it at once). */
  TAIL_POLL_MS: z.coerce.number().int().min(50).max(5000).default(250),
});

export type Config = z.infer<typeof configSchema>;
