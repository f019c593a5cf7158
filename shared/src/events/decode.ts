import { InvalidEventError, UnknownEventTypeError } from "../errors/index.js";
import { cloudEventSchema, type CloudEvent } from "./envelope.js";
import { eventCatalog, eventNameForType, type EventData, type EventName } from "./catalog.js";

export type DecodedEvent = {
  [N in EventName]: { name: N; event: CloudEvent<EventData<N>> };
}[EventName];

const formatIssues = (issues: readonly { path: PropertyKey[]; message: string }[]) =>
  issues.map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`).join("; ");

/**
 * Parses and validates a message body: JSON, then the envelope, then the data schema of its
 * type. Throws permanent errors, because no retry can make a malformed message valid.
 */
export function decodeEvent(body: Uint8Array | string): DecodedEvent {
  let json: unknown;
  try {
    json = JSON.parse(typeof body === "string" ? body : Buffer.from(body).toString("utf8"));
  } catch (cause) {
    throw new InvalidEventError("message body is not valid JSON", { cause });
  }
  const envelope = cloudEventSchema.safeParse(json);
  if (!envelope.success) throw new InvalidEventError(`not a CloudEvent: ${formatIssues(envelope.error.issues)}`);
  const name = eventNameForType(envelope.data.type);
  if (!name) throw new UnknownEventTypeError(`unknown event type or version: ${envelope.data.type}`);
  const data = eventCatalog[name].data.safeParse(envelope.data.data);
  if (!data.success) throw new InvalidEventError(`invalid ${envelope.data.type} data: ${formatIssues(data.error.issues)}`);
  return { name, event: { ...envelope.data, data: data.data } } as DecodedEvent;
}
