import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { pacedLoad, responseEnd } from "../../bench/paced.js";

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  server = createServer(handler);
  server.listen(0, "127.0.0.1");
  await new Promise((r) => server!.once("listening", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("the bench's paced load generator", () => {
  it("frames responses by Content-Length or chunks, and waits for the rest of a split one", () => {
    const sized = Buffer.from("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1");
    expect(responseEnd(sized)).toBe(sized.indexOf("HTTP/1.1", 5));
    expect(responseEnd(Buffer.from("HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\n{}"))).toBe(-1);
    expect(responseEnd(Buffer.from("HTTP/1.1 201 Created\r\nContent-Le"))).toBe(-1);
    const chunked = Buffer.from("HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
    expect(responseEnd(chunked)).toBe(chunked.length);
    expect(responseEnd(Buffer.from("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody"))).toBe(-2);
  });

  it("spreads the requests over the run, each with its own body, and counts each answer by status", async () => {
    const bodies: string[] = [];
    const url = await serve((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        bodies.push(body);
        const i = Number(JSON.parse(body).i);
        if (i % 3 === 0) res.writeHead(409, { "content-type": "application/json" }).end('{"status":409}'); // chunked
        else res.writeHead(201, { "content-length": "2" }).end("{}");
      });
    });
    const r = await pacedLoad({ url, path: "/users", seconds: 0.5, rate: 200, connections: 4, body: (i) => JSON.stringify({ i }) });
    expect(r.errors).toBe(0);
    expect(r.statuses).toEqual({ "201": 66, "409": 34 });
    expect(r.latenciesMs).toHaveLength(100);
    expect(r.seconds).toBeGreaterThanOrEqual(0.49);
    expect(bodies.map((b) => JSON.parse(b).i).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it("gives up on answers still owed after the drain time, counting them as errors", async () => {
    const url = await serve(() => {}); // reads every request, answers none
    const r = await pacedLoad({ url, path: "/users", seconds: 0.1, rate: 100, connections: 4, body: () => "{}", drainMs: 200 });
    expect(r.errors).toBe(10);
    expect(r.statuses).toEqual({});
  });

  it("counts requests on connections the server drops as errors, and still finishes", async () => {
    const url = await serve((req) => req.socket.destroy());
    const r = await pacedLoad({ url, path: "/users", seconds: 0.2, rate: 100, connections: 2, body: () => "{}" });
    expect(r.errors).toBe(20);
    expect(r.statuses).toEqual({});
  });
});
