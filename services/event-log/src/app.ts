import { createServiceApp, type Db, type Logger } from "@orderflow/shared";
import { registerCatalogRoutes } from "./catalog/catalog.handlers.js";
import { registerEventRoutes, type EventsDeps } from "./events/events.handlers.js";
import type { Tail } from "./events/events.tail.js";
import { registerPage } from "./page/page.handlers.js";

export interface AppDeps {
  db: Db;
  log: Logger;
  tail: Tail;
  version?: string;
  namespace?: string;
  /** The NATS the services use, advertised in /asyncapi.json (host only, never credentials). */
  natsUrl?: string;
  keepAliveMs?: number;
  tailLimits?: EventsDeps["tailLimits"];
  maxStreams?: number;
}

/** The HTTP app, built from its dependencies so tests drive it in-process with `app.request`. */
export function createApp({ db, log, tail, version = "0.0.0", namespace = "", natsUrl, keepAliveMs, tailLimits, maxStreams }: AppDeps) {
  const app = createServiceApp({ log });
  registerPage(app);
  registerCatalogRoutes(app, { version, namespace, natsUrl });
  registerEventRoutes(app, { db, log, tail, keepAliveMs, tailLimits, maxStreams });
  app.doc31("/openapi.json", { openapi: "3.1.0", info: { title: "orderflow event-log", version } });
  return app;
}
