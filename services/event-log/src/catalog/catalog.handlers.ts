import { createRoute, z } from "@hono/zod-openapi";
import { asyncApiDocument, describeCatalog, type ServiceApp } from "@orderflow/shared";

const documentRoute = (path: string, summary: string) =>
  createRoute({ method: "get", path, summary, responses: { 200: { description: summary, content: { "application/json": { schema: z.record(z.string(), z.unknown()) } } } } });

/**
 * `GET /catalog` and `GET /asyncapi.json`, both generated from the zod catalog in shared: every
 * stream, subject, type, version and the JSON Schema of its data. Never written by hand.
 */
export function registerCatalogRoutes(app: ServiceApp, { version, namespace, natsUrl }: { version: string; namespace: string; natsUrl?: string }) {
  const catalog = describeCatalog();
  const asyncapi = asyncApiDocument({ version, namespace, server: natsUrl });
  app.openapi(documentRoute("/catalog", "Every stream, subject, event type and version, with the JSON Schema of its data"), (c) => c.json(catalog, 200));
  app.openapi(documentRoute("/asyncapi.json", "The AsyncAPI 3.0 document of the event streams"), (c) => c.json(asyncapi, 200));
}
