import { STATUS_CODES, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { serve } from "@hono/node-server";
import { problem } from "./problem.js";

export interface HttpServer {
  readonly port: number;
  /** Stops accepting connections and resolves once in-flight requests have finished. */
  close(): Promise<void>;
}

export function startHttpServer(fetch: (req: Request, env: object | undefined) => Response | Promise<Response>, port: number, hostname = "0.0.0.0"): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    // Node checks the request timeouts below only this often (30 s by default).
    const server = serve({ fetch, port, hostname, serverOptions: { connectionsCheckingInterval: 2_000 } }, (info: AddressInfo) => {
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
    // A client that trickles its request (slowloris) holds a socket for at most this long; Node's
    // defaults are 60 s for the headers and 300 s for the whole request. Responses (the event
    // log's live tail) are not limited by these.
    server.headersTimeout = 15_000;
    server.requestTimeout = 30_000;
    server.on("clientError", answerUnparsable);
    server.once("error", reject);
  });
}

/**
 * Requests Node's parser refuses before any handler sees them (a Content-Length that is not a
 * number or disagrees with the body, a malformed request line, headers too large) get the same
 * problem+json as every other rejection, instead of Node's bare `400` with no body.
 */
function answerUnparsable(err: NodeJS.ErrnoException, socket: Socket) {
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === "ECONNRESET" || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, detail] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "the request's headers are larger than the server accepts"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "the request did not arrive in time"]
        : [400, "the request is not valid HTTP/1.1 (e.g. a Content-Length that is not a number or does not match the body)"];
  const title = STATUS_CODES[status]!;
  const body = JSON.stringify(problem(status, title, detail));
  // Written, then destroyed, as Node's own handler does: a client that keeps its side open (and
  // keeps trickling bytes) must not hold the socket, or server.close().
  socket.write(`HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy();
}
