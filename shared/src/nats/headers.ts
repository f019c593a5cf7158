import type { JsMsg } from "@nats-io/jetstream";

/** A message's headers as plain strings, a repeated header's values joined with ", " (as HTTP does). */
export function headersOf(msg: JsMsg): Record<string, string> {
  const out: Record<string, string> = {};
  if (msg.headers) for (const [k, v] of msg.headers) out[k] = v.join(", ");
  return out;
}
