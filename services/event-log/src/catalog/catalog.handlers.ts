import { asyncApiDocument, describeCatalog, type ServiceApp } from "@orderflow/shared";

/**
 * `GET /catalog` and `GET /asyncapi.json`, both generated from the zod catalog in shared: every
 * stream, subject, type, version and the JSON Schema of its data. Never written by hand.
 */
export function registerCatalogRoutes(app: ServiceApp, { version, namespace }: { version: string; namespace: string }) {
  const catalog = describeCatalog();
  const asyncapi = asyncApiDocument({ version, namespace });
  app.get("/catalog", (c) => c.json(catalog));
  app.get("/asyncapi.json", (c) => c.json(asyncapi));
}
