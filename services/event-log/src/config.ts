import { baseConfigSchema, envInt } from "@orderflow/shared";
import type { z } from "zod";

export const configSchema = baseConfigSchema.extend({
  PORT: envInt(1, 65535).default(3003),
  /** Messages stored per insert. */
  INGEST_BATCH_SIZE: envInt(1, 1000).default(200),
  /** How often the live tail looks for rows other replicas stored (its own wake it at once). */
  TAIL_POLL_MS: envInt(50, 5000).default(250),
  /**
   * How long the log keeps an event, by its time: 0 keeps every event (the log is the history
   * that outlives the streams' max_age); otherwise at least a minute.
   */
  EVENTLOG_MAX_AGE_MS: envInt(0, 9_000_000_000_000)
    .refine((v) => v === 0 || v >= 60_000, { message: "must be 0 (keep every event) or at least 60000 (a minute)" })
    .default(0),
});

export type Config = z.infer<typeof configSchema>;
