import type { MsgHdrs } from "@nats-io/nats-core";

/**
 * A message's headers, or undefined when it has none or they cannot be decoded. nats.js decodes
 * them on first access and throws on a key it would never send (a space, a colon, non-ASCII),
 * but nats-server stores whatever a client wrote: read unguarded, one such message stalled a
 * consumer for good (redelivered, failing its batch each time, never dead-lettered).
 */
export function readHeaders(msg: { readonly headers?: MsgHdrs }): MsgHdrs | undefined {
  try {
    return msg.headers;
  } catch {
    return undefined;
  }
}

/** Whether the message carries headers nats.js cannot decode (see readHeaders). */
export function hasUnreadableHeaders(msg: { readonly headers?: MsgHdrs }): boolean {
  try {
    void msg.headers;
    return false;
  } catch {
    return true;
  }
}

/** A message's headers as plain strings, a repeated header's values joined with ", " (as HTTP does); none if unreadable. */
export function headersOf(msg: { readonly headers?: MsgHdrs }): Record<string, string> {
  // Filled without a prototype, so a header named __proto__ is kept as one, not swallowed.
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  const h = readHeaders(msg);
  if (h) for (const [k, v] of h) out[k] = v.join(", ");
  return { ...out };
}
