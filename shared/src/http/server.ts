import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";

export interface HttpServer {
  readonly port: number;
  /** Stops accepting connections and resolves once in-flight requests have finished. */
  close(): Promise<void>;
}

export function startHttpServer(fetch: (req: Request, env: object | undefined) => Response | Promise<Response>, port: number, hostname = "0.0.0.0"): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, port, hostname }, (info: AddressInfo) => {
      resolve({
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            // close() stops accepting and drops idle keep-alive sockets; active requests run to
            // completion before the callback fires. A socket that finishes a request while we
            // drain turns idle again, so keep dropping idle ones until everything is closed.
            const sweep = setInterval(() => server.closeIdleConnections(), 100);
            server.close(() => {
              clearInterval(sweep);
              done();
            });
            server.closeIdleConnections();
          }),
      });
    }) as Server;
    server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts
    server.once("error", reject);
  });
}
