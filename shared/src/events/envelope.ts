import { z } from "zod";

/**
 * CloudEvents 1.0 structured-mode envelope. `data` is validated separately against the
 * schema of the event's `type`, so the envelope can be checked before the type is known.
 */
export const cloudEventSchema = z.object({
  specversion: z.literal("1.0"),
  // One event, one spelling: inboxes and Nats-Msg-Id dedupe compare the text, so the same UUID
  // upper-cased would be applied again. Every producer here writes lower case (RFC 9562).
  id: z.uuid().refine((id) => id === id.toLowerCase(), "must be a lower-case UUID"),
  source: z.string().min(1),
  type: z.string().min(1),
  subject: z.string().min(1).optional(),
  time: z.iso.datetime({ offset: true }),
  datacontenttype: z.literal("application/json").optional(),
  data: z.unknown(),
});

export type CloudEvent<T = unknown> = Omit<z.infer<typeof cloudEventSchema>, "data"> & { data: T };
