import { z } from "zod";
import { eventCatalog, streamCatalog, type EventDefinition, type EventName, type StreamName } from "./catalog.js";
import { cloudEventSchema } from "./envelope.js";

/** One event type as documented: where it flows, who sends it and the JSON Schema of its data. */
export type CatalogEntry = Omit<EventDefinition, "data"> & { name: EventName; dataSchema: Record<string, unknown> };

export interface CatalogDocument {
  streams: { name: StreamName; subjects: readonly string[]; description: string }[];
  events: CatalogEntry[];
}

const jsonSchema = (schema: z.ZodType) => {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12", io: "output" }) as Record<string, unknown>;
  return rest;
};

/**
 * The event catalog as plain JSON, derived from the zod schemas in `catalog.ts` (never written
 * by hand). Served by the event log at `GET /catalog`.
 */
export function describeCatalog(): CatalogDocument {
  return {
    streams: (Object.keys(streamCatalog) as StreamName[]).map((name) => ({ name, ...streamCatalog[name] })),
    events: (Object.keys(eventCatalog) as EventName[]).map((name) => {
      const d = eventCatalog[name];
      return {
        name,
        subject: d.subject,
        stream: d.stream,
        type: d.type,
        version: d.version,
        producer: d.producer,
        description: d.description,
        entity: d.entity,
        dataSchema: jsonSchema(d.data),
      };
    }),
  };
}

const key = (name: string) => name.replace(/[^A-Za-z0-9_-]/g, "_");

/** host:port of the first of NATS_URL's servers: no user, password or token in a public document. */
function serverHost(urls: string): string {
  const first = urls.split(",")[0]!.trim();
  try {
    const u = new URL(first.includes("://") ? first : `nats://${first}`);
    return u.port ? `${u.hostname}:${u.port}` : `${u.hostname}:4222`;
  } catch {
    return "127.0.0.1:4222";
  }
}

/**
 * An AsyncAPI 3.0 document for every subject in the catalog: one channel and one `receive`
 * operation per event, the CloudEvents envelope as the message payload with `data` replaced by
 * the event's JSON Schema. `namespace` documents the subject prefix an environment uses.
 * @example app.get("/asyncapi.json", (c) => c.json(asyncApiDocument({ version: "0.1.0" })))
 */
export function asyncApiDocument({ version = "0.0.0", namespace = "", server = "nats://127.0.0.1:4222" }: { version?: string; namespace?: string; server?: string } = {}) {
  const catalog = describeCatalog();
  const envelope = jsonSchema(cloudEventSchema) as { properties?: Record<string, unknown>; required?: string[] };
  const prefix = namespace ? `${namespace}.` : "";
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  for (const e of catalog.events) {
    const k = key(e.name);
    messages[k] = {
      name: e.type,
      title: e.name,
      summary: e.description,
      contentType: "application/cloudevents+json",
      payload: {
        ...envelope,
        properties: {
          ...envelope.properties,
          type: { const: e.type },
          subject: { type: "string", description: e.entity },
          data: e.dataSchema,
        },
        required: [...new Set([...(envelope.required ?? []), "subject", "data"])],
      },
      headers: {
        type: "object",
        properties: { "Nats-Msg-Id": { type: "string", description: "The CloudEvent id; JetStream deduplicates republished events by it" } },
      },
      "x-stream": e.stream,
      "x-version": e.version,
    };
    channels[k] = {
      address: `${prefix}${e.subject}`,
      description: `${e.description} Stream ${e.stream}; producer ${e.producer}.`,
      messages: { [k]: { $ref: `#/components/messages/${k}` } },
    };
    operations[`receive_${k}`] = {
      action: "receive",
      channel: { $ref: `#/channels/${k}` },
      summary: `Consume ${e.type}`,
      messages: [{ $ref: `#/channels/${k}/messages/${k}` }],
    };
  }
  return {
    asyncapi: "3.0.0",
    info: {
      title: "orderflow events",
      version,
      description: `CloudEvents 1.0 (structured JSON) on NATS JetStream. Streams: ${catalog.streams.map((s) => `${s.name} (${s.subjects.join(", ")})`).join("; ")}.`,
    },
    defaultContentType: "application/cloudevents+json",
    servers: { nats: { host: serverHost(server), protocol: "nats", description: "NATS with JetStream" } },
    channels,
    operations,
    components: { messages },
  };
}
