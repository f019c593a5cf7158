import { createServiceApp, type Db, type Logger, type OutboxMessage } from "@orderflow/shared";
import { registerUserRoutes } from "./users/users.handlers.js";

export interface AppDeps {
  db: Db;
  log: Logger;
  published: (messages: OutboxMessage[]) => void;
  version?: string;
}

/** The HTTP app, built from its dependencies so tests drive it in-process with `app.request`. */
export function createApp({ db, log, published, version = "0.0.0" }: AppDeps) {
  const app = createServiceApp({ log });
  registerUserRoutes(app, { db, published });
  app.doc31("/openapi.json", { openapi: "3.1.0", info: { title: "orderflow user-service", version } });
  return app;
}
