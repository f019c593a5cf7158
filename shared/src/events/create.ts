import { uuidv7 } from "../ids/index.js";
import type { CloudEvent } from "./envelope.js";
import { eventCatalog, type EventData, type EventName } from "./catalog.js";

export interface NewEvent<N extends EventName> {
  name: N;
  source: string;
  subject: string;
  data: EventData<N>;
  time?: Date;
  id?: string;
}

/**
 * Builds the CloudEvent for a catalog entry. Data is typed by the catalog, so it is not
 * re-validated here: it comes from our own domain code, not from outside.
 * @example createEvent({ name: "users.registered", source: "/user-service", subject: id, data })
 */
export function createEvent<N extends EventName>(e: NewEvent<N>): CloudEvent<EventData<N>> {
  return {
    specversion: "1.0",
    id: e.id ?? uuidv7(),
    source: e.source,
    type: eventCatalog[e.name].type,
    subject: e.subject,
    time: (e.time ?? new Date()).toISOString(),
    datacontenttype: "application/json",
    data: e.data,
  };
}
