import { decodeEvent, type StreamName } from "@orderflow/shared";
import type { NewEventRow } from "../db/schema.js";

/** A stored JetStream message, independent of the client library. */
export interface RawMessage {
  stream: StreamName;
  streamSeq: number;
  /** When JetStream stored it. */
  streamTime: Date;
  /** Subject without the namespace prefix. */
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
}

const MAX_RAW = 64 * 1024;
const str = (v: unknown, max = 500) => (typeof v === "string" && v.length > 0 ? v.slice(0, max) : null);
const header = (h: Record<string, string>, test: (lower: string) => boolean) => {
  for (const [k, v] of Object.entries(h)) if (test(k.toLowerCase())) return v;
  return null;
};

/**
 * Turns a message into the row the log stores. Never throws: an event that fails validation is
 * kept with `valid: false` and the reason, and with whatever envelope fields could be read, because
 * the log must show what was actually published. Pure, so it is tested without I/O.
 */
export function toEventRow(m: RawMessage): NewEventRow {
  const text = Buffer.from(m.data).toString("utf8");
  const base = {
    stream: m.stream,
    streamSeq: m.streamSeq,
    streamTime: m.streamTime,
    subject: m.subject,
    headers: m.headers,
    traceparent: header(m.headers, (k) => k === "traceparent"),
    correlationId: header(m.headers, (k) => k.includes("correlation")),
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ...base, time: m.streamTime, valid: false, error: "message body is not valid JSON", raw: text.slice(0, MAX_RAW) };
  }
  try {
    const { event } = decodeEvent(text);
    return {
      ...base,
      eventId: event.id,
      type: event.type,
      source: event.source,
      entity: event.subject ?? null,
      time: new Date(event.time),
      data: event.data as unknown,
      valid: true,
    };
  } catch (err) {
    // Keep what can be read from a broken envelope so the event still shows up in searches.
    const o = (json && typeof json === "object" && !Array.isArray(json) ? json : {}) as Record<string, unknown>;
    const time = typeof o.time === "string" ? new Date(o.time) : undefined;
    return {
      ...base,
      eventId: str(o.id, 200),
      type: str(o.type),
      source: str(o.source),
      entity: str(o.subject),
      time: time && !Number.isNaN(time.getTime()) ? time : m.streamTime,
      data: "data" in o ? (o.data as unknown) ?? null : json,
      valid: false,
      error: (err as Error).message.slice(0, 2000),
    };
  }
}
