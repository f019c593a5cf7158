import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { AddressInfo, Socket } from "node:net";
import { getRequestListener, RequestError } from "@hono/node-server";
import { PROBLEM_CONTENT_TYPE, problem, problemResponse, type ProblemDetails } from "./problem.js";
import { StartupError } from "../errors/index.js";

export interface HttpServer {
  readonly port: number;
  /** Stops accepting connections and resolves once in-flight requests have finished. */
  close(): Promise<void>;
}

export function startHttpServer(fetch: (req: Request, env: object | undefined) => Response | Promise<Response>, port: number, hostname = "0.0.0.0"): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    // @hono/node-server's serve(), with an error handler (serve() passes it none). Node checks
    // the request timeouts below only this often (30 s by default).
    const listener = getRequestListener(fetch, { hostname, errorHandler: requestNotMade });
    // HTTP/1.1 requires Host (RFC 9112 §3.2); Node's own check answers an empty 400, so the
    // check is made here, with a problem.
    const server = createServer({ connectionsCheckingInterval: 2_000, requireHostHeader: false }, (req, res) => {
      if (req.headers.host === undefined && req.httpVersion === "1.1") return void answerProblem(res, problem(400, "Bad Request", "the request has no Host header"));
      // Node keeps the first of several Host lines; RFC 9112 §3.2 says refuse them, since a proxy
      // in front may have routed by another one.
      if ((req.headersDistinct.host?.length ?? 0) > 1) return void answerProblem(res, problem(400, "Bad Request", "the request has more than one Host header"));
      // `OPTIONS *` asks about the server as a whole (RFC 9110 §9.3.7), a ping some clients and
      // proxies send; the adapter cannot make a Request of it, and no route is for it.
      if (req.method === "OPTIONS" && req.url === "*") return void res.writeHead(204).end();
      void listener(req, res);
    });
    server.listen(port, hostname, () => {
      resolve({
        port: (server.address() as AddressInfo).port,
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
    });
    // A client that sends its request and then half-closes (`printf 'GET /readyz …' | nc`, a
    // monitoring script's way) still wants the answer (RFC 9112 §9.6: a half-close does not
    // delimit a request). By default Node aborts every request in flight on that FIN, so one
    // answered after an await (any route that reads the database) got nothing, and a
    // registration was dropped unanswered. With this, the answer goes out and then the
    // connection closes. (Undocumented, but read by Node's socketOnEnd since 0.x and used by spdy.)
    (server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts
    // A client that trickles its request (slowloris) holds a socket for at most this long; Node's
    // defaults are 60 s for the headers and 300 s for the whole request. Responses (the event
    // log's live tail) are not limited by these.
    server.headersTimeout = 15_000;
    server.requestTimeout = 30_000;
    server.on("clientError", answerUnparsable);
    // An Expect other than 100-continue (RFC 9110 §10.1.1): Node's own answer is an empty 417.
    server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) =>
      answerProblem(res, problem(417, "Expectation Failed", `this server meets no expectation but 100-continue; got Expect: ${String(req.headers.expect).slice(0, 100)}`)),
    );
    // Without a listener Node closes a CONNECT's socket without a word; no route tunnels.
    server.on("connect", (req: IncomingMessage, socket: Duplex) => answerConnect(req, socket as Socket));
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") reject(new StartupError(`port ${port} on ${hostname} is already in use by another process; set PORT to a free one`, { cause: err }));
      else if (err.code === "EACCES") reject(new StartupError(`port ${port} on ${hostname} needs privileges this process does not have; set PORT to one above 1023`, { cause: err }));
      else if (err.code === "ENOTFOUND" || err.code === "EADDRNOTAVAIL" || err.code === "EAI_AGAIN") reject(new StartupError(`cannot listen on ${hostname}: no such address on this machine (${err.code}); set HOST to one of its addresses, or 0.0.0.0`, { cause: err }));
      else reject(err);
    });
  });
}

/** CONNECT (a proxy tunnel) reaches no route: 405 problem+json, then the connection closes. */
function answerConnect(req: IncomingMessage, socket: Socket) {
  const body = JSON.stringify(problem(405, "Method Not Allowed", `this server is not a proxy: CONNECT ${req.url?.slice(0, 100) ?? ""} is not served`));
  // Node hands the socket over without its error and timeout handlers: a reset would be an
  // uncaught error, and a client keeping its side open would hold server.close() (shutdown).
  socket.on("error", () => socket.destroy());
  socket.setTimeout(5_000, () => socket.destroy());
  socket.end(`HTTP/1.1 405 Method Not Allowed\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`, () => socket.destroy());
}

/** A problem answer written straight to Node's response, for requests the app never sees. */
function answerProblem(res: ServerResponse, p: ProblemDetails) {
  const body = JSON.stringify(p);
  res.writeHead(p.status, { "content-type": PROBLEM_CONTENT_TYPE, "content-length": Buffer.byteLength(body), connection: "close" }).end(body);
}

/**
 * @hono/node-server cannot make a WHATWG Request of some that Node's parser let through (no Host,
 * a malformed Host, a backslash in the path) and answers those with a bare 400;
 * anything else reaching here escaped the app's own error handler.
 */
function requestNotMade(err: unknown): Response {
  if (err instanceof RequestError) return problemResponse(problem(400, "Bad Request", `the request cannot be served: ${err.message}`));
  return problemResponse(problem(500, "Internal Server Error", "an unexpected error occurred"));
}

type InFlight = NodeJS.EventEmitter & { req?: { complete: boolean }; headersSent: boolean; writableFinished: boolean };

/** `METHOD target HTTP/1.x`: a request line whose only fault can be its method. */
const WELL_FORMED_REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ \S+ HTTP\/1\.[01]\r?\n/;

/** The line of the received bytes where the parser stopped (Node gives the bytes and the offset). */
function lineAtFault(err: { rawPacket?: Buffer; bytesParsed?: number }): string {
  const raw = err.rawPacket;
  if (!raw) return "";
  const at = Math.min(err.bytesParsed ?? 0, raw.length);
  const start = at > 0 ? raw.lastIndexOf(10, at - 1) + 1 : 0;
  return raw.subarray(start, start + 8192).toString("latin1");
}

/**
 * Node's parser counts the request line with the headers and reports either overflowing as one
 * error, at the end of the span that overflowed. Only the request target can be followed by
 * ` HTTP/1.x` (a header's span ends at its line break), so that tells a long URI (414, RFC 9110
 * §15.5.15) from long headers (431). A target whose overflow falls inside a packet of the
 * client's that holds nothing else cannot be told apart, and stays a 431.
 */
function targetTooLong(err: { rawPacket?: Buffer; bytesParsed?: number }): boolean {
  const raw = err.rawPacket;
  if (!raw || err.bytesParsed === undefined) return false;
  return raw.subarray(err.bytesParsed, err.bytesParsed + 9).toString("latin1").startsWith(" HTTP/1.");
}

/** Sockets whose refusal waits for the answers of the requests before it. */
const waiting = new WeakSet<Socket>();

/**
 * Requests Node's parser refuses before any handler sees them (a Content-Length that is not a
 * number or disagrees with the body, a malformed request line, headers too large) get the same
 * problem+json as every other rejection, instead of Node's bare `400` with no body.
 */
function answerUnparsable(err: NodeJS.ErrnoException, socket: Socket) {
  if (err.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  // The parser is done with this connection; more bytes would only raise this again.
  if (waiting.has(socket)) return;
  const inFlight = (socket as Socket & { _httpMessage?: InFlight })._httpMessage;
  // The bytes at fault follow requests that arrived whole and are still being answered
  // (pipelining, or a body longer than its Content-Length, whose excess parses as the next
  // request): their answers go out first, so a client does not lose the 201 of a registration
  // that was committed. Node's own handler answers 400 in their place.
  if (inFlight?.req?.complete) {
    waiting.add(socket);
    socket.pause();
    const next = () => {
      const current = (socket as Socket & { _httpMessage?: InFlight })._httpMessage;
      // Answered (the next queued answer, if any, takes the socket on a later turn), or gone.
      if (socket.destroyed) return;
      if (current && !current.writableFinished) return void current.once("finish", () => setImmediate(next));
      if (current) return void setImmediate(next);
      waiting.delete(socket);
      answerUnparsable(err, socket);
    };
    return next();
  }
  // The request being answered is the one at fault (its body timed out or is malformed): once
  // its answer has begun, nothing can be added to it.
  if (inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, detail] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? targetTooLong(err as { rawPacket?: Buffer; bytesParsed?: number })
        ? [414, "the request target (path and query) is longer than the server accepts"]
        : [431, "the request's headers are larger than the server accepts"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "the request did not arrive in time"]
        : err.code === "HPE_INVALID_METHOD" && WELL_FORMED_REQUEST_LINE.test(lineAtFault(err as { rawPacket?: Buffer; bytesParsed?: number }))
          ? // RFC 9110 §9.1: a method the server does not know is 501; garbage stays a 400.
            [501, "the request method is not one this server knows"]
          : err.code === "HPE_INVALID_TRANSFER_ENCODING"
            ? // RFC 9112 §6.1, §6.3: chunked must come last, and once, or nothing says where the body ends.
              [400, "the request's Transfer-Encoding must end in chunked, applied once; otherwise where its body ends cannot be known"]
            : [400, "the request is not valid HTTP/1.1 (e.g. a Content-Length that is not a number or does not match the body)"];
  const title = STATUS_CODES[status]!;
  const body = JSON.stringify(problem(status, title, detail));
  // Written, then destroyed, as Node's own handler does: a client that keeps its side open (and
  // keeps trickling bytes) must not hold the socket, or server.close().
  socket.write(`HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy();
}
