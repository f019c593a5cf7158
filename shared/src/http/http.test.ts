import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { HttpProblemError } from "../errors/index.js";
import { uuidv7 } from "../ids/index.js";
import { decodeCursor, encodeCursor, toPage } from "./cursor.js";
import { fieldErrors } from "./validation.js";
import { createServiceApp, jsonBody } from "./app.js";
import { startHttpServer, type HttpServer } from "./server.js";
import { createLogger } from "../logger/index.js";
import { waitFor } from "../testing/wait.js";

describe("cursor", () => {
  it("round-trips and rejects anything else with a 400 problem", () => {
    const c = { createdAt: new Date("2026-01-02T03:04:05.678Z"), id: uuidv7() };
    expect(decodeCursor(encodeCursor(c))).toEqual(c);
    for (const bad of ["x", encodeCursor(c) + "A", Buffer.from("2026|not-a-uuid").toString("base64url")]) {
      expect(() => decodeCursor(bad)).toThrow(HttpProblemError);
    }
  });

  it("pages with one extra row to know whether more exist", () => {
    const rows = [3, 2, 1].map((n) => ({ id: uuidv7(n), createdAt: new Date(n) }));
    const page = toPage(rows, 2, (r) => r.id);
    expect(page.items).toEqual([rows[0]!.id, rows[1]!.id]);
    expect(decodeCursor(page.nextCursor!).id).toBe(rows[1]!.id);
    expect(toPage(rows, 3, (r) => r.id).nextCursor).toBeNull();
  });
});

describe("fieldErrors", () => {
  it("points at each invalid field with a JSON pointer", () => {
    const schema = z.strictObject({ items: z.array(z.object({ sku: z.string().min(2) })) });
    const result = schema.safeParse({ items: [{ sku: "ok" }, { sku: "x" }], extra: 1 });
    expect(result.success).toBe(false);
    const errors = fieldErrors("body", result.error!);
    expect(errors.map((e) => e.pointer).sort()).toEqual(["/extra", "/items/1/sku"]);
  });

  it("gives a value that breaks several rules one entry", () => {
    const schema = z.object({ cents: z.number().int().max(1000) });
    const errors = fieldErrors("body", schema.safeParse({ cents: 1e20 }).error!);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ in: "body", pointer: "/cents" });
    expect(errors[0]!.detail.split("; ")).toHaveLength(2);
  });
});

describe("jsonBody behind the Node server", () => {
  // Over a real socket the declared length is trusted (Node enforces it) and the body is read
  // straight from the socket; a chunked body has no length to trust and is counted instead.
  let server: HttpServer;
  let app: ReturnType<typeof createServiceApp>;
  beforeAll(async () => {
    app = createServiceApp({ log: createLogger({ service: "test", level: "silent" }) });
    app.post("/echo", jsonBody({ maxBytes: 1024 }), async (c) => c.json({ got: await c.req.json() }, 201));
    server = await startHttpServer((req, env) => app.fetch(req, env), 0, "127.0.0.1");
  });
  afterAll(() => server.close());

  const post = (body: string | Buffer, headers: Record<string, string>) =>
    new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port: server.port, path: "/echo", method: "POST", headers }, (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode!, type: res.headers["content-type"], body: text }));
      });
      req.on("error", reject);
      // Two writes: without a Content-Length Node sends them as chunks.
      req.write(body.slice(0, 10));
      req.end(body.slice(10));
    });

  it("accepts a body within the limit, declared or chunked", async () => {
    const body = JSON.stringify({ name: "Ada" });
    for (const headers of [{ "content-type": "application/json", "content-length": String(body.length) }, { "content-type": "application/json" }]) {
      const res = await post(body, headers);
      expect(res.status).toBe(201);
      expect(JSON.parse(res.body)).toEqual({ got: { name: "Ada" } });
    }
  });

  it("refuses a body that is not UTF-8 with 400 problem+json instead of storing U+FFFD, declared or chunked", async () => {
    const body = Buffer.concat([Buffer.from(`{"name":"Ad`), Buffer.from([0xff, 0xfe]), Buffer.from(`a"}`)]);
    for (const headers of [{ "content-type": "application/json", "content-length": String(body.length) }, { "content-type": "application/json" }]) {
      const res = await post(body, headers);
      expect(res.status).toBe(400);
      expect(res.type).toBe("application/problem+json");
      expect(JSON.parse(res.body)).toMatchObject({ status: 400, detail: "the request body is not valid UTF-8" });
    }
    // In process, where the body is counted while streaming.
    const inProcess = await app.request("/echo", { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(inProcess.status).toBe(400);
    expect(inProcess.headers.get("content-type")).toBe("application/problem+json");
    // A character split between two chunks (bytes 9 and 10 are "ë") is still one character.
    const ok = await post(Buffer.from(JSON.stringify({ name: "ëZo 東京 🎉" })), { "content-type": "application/json" });
    expect(JSON.parse(ok.body)).toEqual({ got: { name: "ëZo 東京 🎉" } });
  });

  it("answers requests Node's parser refuses with problem+json too, not a bare 400", async () => {
    const raw = (text: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(server.port, "127.0.0.1", () => socket.end(text));
        let got = "";
        socket.setEncoding("utf8").on("data", (d: string) => (got += d));
        socket.on("close", () => resolve(got));
        socket.on("error", reject);
      });
    for (const length of ["abc", "99999999999999999999", "1, 2"]) {
      const res = await raw(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n{}`);
      const [head, body] = res.split("\r\n\r\n");
      expect(head, length).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(head).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/i);
      expect(JSON.parse(body!)).toMatchObject({ status: 400, title: "Bad Request" });
    }
    // A client that keeps its side open after the answer (half-open) does not keep the server's
    // socket, so the server can still close.
    const own = await startHttpServer((req, env) => app.fetch(req, env), 0, "127.0.0.1");
    const open = connect({ port: own.port, host: "127.0.0.1", allowHalfOpen: true }, () => open.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"));
    let answered = false;
    open.on("end", () => (answered = true)).on("error", () => {});
    open.resume();
    await waitFor(() => answered, { what: "the answer" });
    let closed = false;
    void own.close().then(() => (closed = true));
    await waitFor(() => closed, { what: "the server to close", timeoutMs: 5000 });
    open.destroy();
    const huge = await raw(`GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(JSON.parse(huge.split("\r\n\r\n")[1]!)).toMatchObject({ status: 431, detail: "the request's headers are larger than the server accepts" });
  });

  it("answers a body the client stops sending with 400, not a 503 blamed on the database", async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(`{"name":`));
      },
      pull(c) {
        c.error(Object.assign(new Error("aborted"), { code: "ECONNRESET" }));
      },
    });
    const res = await app.request("/echo", { method: "POST", headers: { "content-type": "application/json" }, body, duplex: "half" } as RequestInit);
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  });

  it("answers 413 problem+json past the limit, declared or chunked", async () => {
    const body = JSON.stringify({ name: "x".repeat(2000) });
    for (const headers of [{ "content-type": "application/json", "content-length": String(body.length) }, { "content-type": "application/json" }]) {
      const res = await post(body, headers);
      expect(res.status).toBe(413);
      expect(res.type).toBe("application/problem+json");
    }
  });
});
