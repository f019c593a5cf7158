import { randomHex } from "../ids/index.js";

/**
 * W3C Trace Context across the pipeline. Each hop that writes an event (an HTTP request, a
 * consumer queuing the next event) gives its outbox row a `traceparent` header: the caller's
 * trace id with a new parent id, or a fresh trace when there is none. The relay publishes it as
 * a NATS header, the consumer of that message continues it, and the event log stores it, so one
 * trace id ties a registration, its welcome order and the count update together for a tracing
 * backend or a query of the log.
 */
export const TRACEPARENT = "traceparent";

/** What a consumer knows about a message beyond its event: its trace context. */
export interface EventContext {
  traceparent?: string;
}

// version 00; trace id and parent id must not be all zeros (the spec's invalid values).
const VALID = /^00-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-([0-9a-f]{2})$/;

/** A traceparent for the next hop: `parent`'s trace id and flags with a new parent id, or a new trace. */
export function childTraceparent(parent?: string | null): string {
  const m = parent ? VALID.exec(parent) : null;
  const id = randomHex(m ? 8 : 24);
  return m ? `00-${m[1]}-${id}-${m[2]}` : `00-${id.slice(0, 32)}-${id.slice(32)}-01`;
}

/** The trace id of a valid traceparent, else undefined. */
export const traceIdOf = (traceparent?: string | null): string | undefined => (traceparent ? VALID.exec(traceparent)?.[1] : undefined);

/** Outbox headers that continue `parent`'s trace. */
export const traceHeaders = (parent?: string | null): Record<string, string> => ({ [TRACEPARENT]: childTraceparent(parent) });
