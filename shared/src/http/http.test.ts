import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { z } from "zod";
import { HttpProblemError } from "../errors/index.js";
import { uuidv7 } from "../ids/index.js";
import { decodeCursor, encodeCursor, toPage } from "./cursor.js";
import { fieldErrors } from "./validation.js";
import { createServiceApp, jsonBody } from "./app.js";
import { readIdempotencyKey } from "./idempotency.js";
import { startHttpServer, type HttpServer } from "./server.js";
import { createLogger } from "../logger/index.js";
import { waitFor } from "../testing/wait.js";

describe("cursor", () => {
  const b64 = (text: string) => Buffer.from(text).toString("base64url");

  it("round-trips and rejects anything else with a 400 problem", () => {
    const c = { createdAt: new Date("2026-01-02T03:04:05.678Z"), id: uuidv7() };
    const cursor = encodeCursor("users", c);
    expect(decodeCursor("users", cursor)).toEqual(c);
    const bad = [
      "x",
      cursor + "A",
      b64(`users|2026|not-a-uuid`),
      // Another listing's cursor.
      encodeCursor("orders", c),
      // Characters base64url does not have, which Node's decoder would skip.
      `${cursor}!!!`,
      `${cursor}==`,
      // Times a Date takes but Postgres refuses (22007/22008/22009 would be a 500).
      b64(`users|0000-01-01T00:00:00.000Z|${c.id}`),
      // Stored right, read back as 1950 by the driver's Date: refused, so no row is paged past.
      b64(`users|0050-06-15T00:00:00.000Z|${c.id}`),
      b64(`users|-000001-01-01T00:00:00.000Z|${c.id}`),
      b64(`users|+275760-09-13T00:00:00.000Z|${c.id}`),
      // Not the form this service writes.
      b64(`users|2026|${c.id}`),
      b64(`users|2026-01-02T03:04:05Z|${c.id}`),
      b64(`users|2026-02-30T00:00:00.000Z|${c.id}`),
    ];
    for (const raw of bad) expect(() => decodeCursor("users", raw), raw).toThrow(HttpProblemError);
    // A cursor as issued before cursors named their listing (a client paging through a deploy).
    expect(decodeCursor("users", b64(`2026-01-02T03:04:05.678Z|${c.id}`))).toEqual(c);
    // The edges of the range Postgres reads back.
    for (const time of ["0100-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"]) {
      expect(decodeCursor("users", b64(`users|${time}|${c.id}`)).createdAt.toISOString()).toBe(time);
    }
  });

  it("pages with one extra row to know whether more exist", () => {
    const rows = [3, 2, 1].map((n) => ({ id: uuidv7(n), createdAt: new Date(n) }));
    const page = toPage("users", rows, 2, (r) => r.id);
    expect(page.items).toEqual([rows[0]!.id, rows[1]!.id]);
    expect(decodeCursor("users", page.nextCursor!).id).toBe(rows[1]!.id);
    expect(toPage("users", rows, 3, (r) => r.id).nextCursor).toBeNull();
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

  it("says only that a value has the wrong type, not what the rules of the right type make of it", () => {
    const schema = z.strictObject({ name: z.string().trim().min(1).max(100), tags: z.array(z.string()).min(1) });
    const errors = fieldErrors("body", schema.safeParse({ name: [], tags: "x" }).error!);
    expect(errors).toEqual([
      { in: "body", pointer: "/name", detail: "Invalid input: expected string, received array" },
      { in: "body", pointer: "/tags", detail: "Invalid input: expected array, received string" },
    ]);
  });

  it("gives a value that breaks several rules one entry", () => {
    const schema = z.object({ cents: z.number().int().max(1000) });
    const errors = fieldErrors("body", schema.safeParse({ cents: 1e20 }).error!);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ in: "body", pointer: "/cents" });
    expect(errors[0]!.detail.split("; ")).toHaveLength(2);
  });
});

describe("createServiceApp", () => {
  it("answers a path it serves under another method with 405 and Allow, whatever the path syntax, and other paths with 404", async () => {
    const app = createServiceApp({ log: createLogger({ service: "test", level: "silent" }) });
    app.use("*", async (_c, next) => next()); // middleware matches every method, and allows none
    app.get("/things/:id{[0-9]+}", (c) => c.text("thing"));
    app.post("/things", (c) => c.text("made", 201));
    app.get("/files/*", (c) => c.text("file"));
    const cases: [string, string, number, string | null][] = [
      ["DELETE", "/things/12", 405, "GET, HEAD, OPTIONS"],
      ["PUT", "/things", 405, "OPTIONS, POST"],
      ["POST", "/files/a/b.png", 405, "GET, HEAD, OPTIONS"],
      ["DELETE", "/things/ab", 404, null],
      ["GET", "/nothing", 404, null],
    ];
    for (const [method, path, status, allow] of cases) {
      const res = await app.request(path, { method });
      expect([res.status, res.headers.get("allow")], `${method} ${path}`).toEqual([status, allow]);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
    }
    // OPTIONS asks what a path takes: 204 with Allow where something is served, 404 elsewhere.
    for (const [path, allow] of [["/things/12", "GET, HEAD, OPTIONS"], ["/things", "OPTIONS, POST"]]) {
      const res = await app.request(path!, { method: "OPTIONS" });
      expect([res.status, res.headers.get("allow"), await res.text()], path).toEqual([204, allow, ""]);
    }
    expect((await app.request("/things/ab", { method: "OPTIONS" })).status).toBe(404);
  });

  it("refuses a query parameter whose percent-escapes are not UTF-8, naming it, and takes those that are", async () => {
    const app = createServiceApp({ log: createLogger({ service: "test", level: "silent" }) });
    app.get("/things", (c) => c.json(c.req.queries()));
    for (const [query, pointer] of [["type=%FF", "/type"], ["a=1&na%E9me=x", "/na%E9me"], ["q=%C3", "/q"], ["ok=%C3%A9&bad=%FF%", "/bad"]]) {
      const res = await app.request(`/things?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(((await res.json()) as { errors: { in: string; pointer: string }[] }).errors, query).toEqual([{ in: "query", pointer, detail: "is not UTF-8 when its percent-escapes are decoded" }]);
    }
    const fine = await app.request("/things?name=Jos%C3%A9&plus=a+b&pct=100%25&plain=x&stray=50%&=%FF");
    expect([fine.status, await fine.json()]).toEqual([200, { name: ["José"], plus: ["a b"], pct: ["100%"], plain: ["x"], stray: ["50%"] }]);
    // A path nothing serves is a 404 whatever its query.
    expect((await app.request("/nothing?type=%FF")).status).toBe(404);
  });

  it("answers 503 while the database is unreachable, and logs the first failure and a count, not a line per request", async () => {
    const lines: { msg: string; alsoFailed?: number }[] = [];
    const destination = new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) });
    const app = createServiceApp({ log: createLogger({ service: "test", level: "info", destination }) });
    app.get("/users", () => {
      throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    });
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const answers = await Promise.all(Array.from({ length: 50 }, () => app.request("/users")));
      expect(answers.map((r) => [r.status, r.headers.get("retry-after")])).toEqual(Array(50).fill([503, "1"]));
      expect(lines.filter((l) => l.msg.startsWith("database unavailable"))).toHaveLength(1);
      // The rest are told when the 5 s end, in one line: not with a later outage's first.
      vi.advanceTimersByTime(5_000);
      expect(lines.filter((l) => l.msg.startsWith("database unavailable")).map((l) => [l.msg, l.alsoFailed])).toEqual([
        ["database unavailable", undefined],
        ["database unavailable: more requests failed alike", 49],
      ]);
      // Quiet ended: the next failure is logged again.
      expect((await app.request("/users")).status).toBe(503);
      expect(lines.filter((l) => l.msg === "database unavailable")).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it("answers 503 past the request deadline, and refuses at once while too many requests still wait past theirs", async () => {
    const app = createServiceApp({ log: createLogger({ service: "test", level: "silent" }) });
    let release!: () => void;
    const stuck = new Promise<void>((r) => (release = r));
    app.get("/stuck", async (c) => (await stuck, c.text("late")));
    app.get("/quick", (c) => c.text("ok"));
    let slow!: () => void;
    const later = new Promise<void>((r) => (slow = r));
    app.get("/slow", async (c) => (await later, c.text("in time")));
    app.answerWithin(30);
    const seen = new Map<string, number>();
    app.observeRequests((method, route, status) => void seen.set(`${method} ${route} ${status}`, (seen.get(`${method} ${route} ${status}`) ?? 0) + 1));
    const late = await Promise.all(Array.from({ length: 256 }, () => app.request("/stuck")));
    expect(late.map((r) => r.status)).toEqual(Array(256).fill(503));
    expect(late[0]!.headers.get("retry-after")).toBe("5");
    expect(((await late[0]!.json()) as { detail: string }).detail).toMatch(/not answered within 30 ms \(the database is slow or unreachable\)$/);
    // 256 still running: the next is refused without waiting, even one that would be quick.
    const refused = await app.request("/quick");
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/^256 earlier requests still wait/);
    // Counted under the routes they were for, even the one refused before its handler ran.
    expect(Object.fromEntries(seen)).toEqual({ "GET /stuck 503": 256, "GET /quick 503": 1 });
    release();
    await waitFor(async () => (await app.request("/quick")).status === 200, { what: "requests answered again once the stuck ones finished" });
    app.answerWithin(0);
    const pending = app.request("/slow");
    setTimeout(slow, 100);
    expect((await pending).status).toBe(200); // 0: no deadline
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
    app.post("/keyed", (c) => c.json({ key: readIdempotencyKey(c) ?? null }));
    // Answers after a while, as a request that commits to a database does; later names sooner,
    // so pipelined answers are ready out of order.
    app.post("/slow", jsonBody({ maxBytes: 1024 }), async (c) => {
      const got = (await c.req.json()) as { name: string };
      // A outlasts the client's trickle (20 chunks 5 ms apart) in the pipelining test.
      await new Promise((r) => setTimeout(r, ({ A: 250, B: 30 } as Record<string, number>)[got.name] ?? 10));
      return c.json({ got }, 201);
    });
    server = await startHttpServer((req, env) => app.fetch(req, env), 0, "127.0.0.1");
  });
  afterAll(() => server.close());

  const post = (body: string | Buffer, headers: Record<string, string | undefined>) =>
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

  /** Writes `text` as it is and reads everything the server answers until it closes. */
  const raw = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(server.port, "127.0.0.1", () => socket.end(text));
      let got = "";
      socket.setEncoding("utf8").on("data", (d: string) => (got += d));
      socket.on("close", () => resolve(got));
      socket.on("error", reject);
    });

  it("answers a request whose client half-closed after sending it (printf … | nc), also once the answer takes a while", async () => {
    // raw() ends its side with the request: RFC 9112 §9.6, a half-close does not delimit a
    // request nor say the client lost interest. /slow answers after a timer, as a route that
    // reads the database does: Node's default aborted it on the FIN, and the client got nothing.
    const body = JSON.stringify({ name: "B" });
    const res = await raw(`POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(res).toMatch(/^HTTP\/1\.1 201 Created\r\n/);
    expect(res.split("\r\n\r\n")[1]).toBe(JSON.stringify({ got: { name: "B" } }));
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
      expect(JSON.parse(res.body)).toMatchObject({ status: 400, detail: "the request body is not valid UTF-8", errors: [{ in: "body", pointer: "/", detail: "is not valid UTF-8" }] });
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
    onTestFinished(() => (open.destroy(), own.close())); // also when an assertion fails first
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
    // The request line counts towards the same limit: a target past it is a 414, and a header
    // value that contains " HTTP/1.1" stays a 431.
    const long = await raw(`GET /echo?q=${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(long).toMatch(/^HTTP\/1\.1 414 URI Too Long\r\n/);
    expect(JSON.parse(long.split("\r\n\r\n")[1]!)).toMatchObject({ status: 414, detail: "the request target (path and query) is longer than the server accepts" });
    expect(await raw(`GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)} HTTP/1.1\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431 /);
  });

  it("answers the requests that arrived whole before refusing what follows them on the same connection", async () => {
    // The client keeps its side open (no FIN, which would end the answers early) and reads
    // until the server closes the connection.
    const open = (chunks: string[]) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(server.port, "127.0.0.1", async () => {
          for (const c of chunks) {
            socket.write(c);
            await new Promise((r) => setTimeout(r, 5));
          }
        });
        let got = "";
        socket.setEncoding("utf8").on("data", (d: string) => (got += d));
        socket.on("close", () => resolve(got));
        // A chunk written after the server closed its side is reset: what was read counts.
        socket.on("error", (err: NodeJS.ErrnoException) => (err.code === "ECONNRESET" || err.code === "EPIPE" ? resolve(got) : reject(err)));
      });
    const post = (path: string, name: string) => {
      const body = JSON.stringify({ name });
      return `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      for (const [requests, rest] of [
        // Bytes after a body of the declared length parse as the next request, which is garbage.
        [[post("/echo", "A")], ["GARBAGE\r\n\r\n"]],
        [[post("/echo", "A")], ["POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"]],
        // Three slow answers pipelined, then garbage, then more bytes trickling in while they run.
        [[post("/slow", "A"), post("/slow", "B"), post("/slow", "C")], ["GARBAGE\r\n\r\n", ...Array(20).fill("more bytes")]],
      ] as const) {
        const res = await open([requests.join("") + rest[0], ...rest.slice(1)]);
        const answers = res.split(/(?=HTTP\/1\.1 \d{3} )/);
        expect(answers, res).toHaveLength(requests.length + 1);
        for (const [i, answer] of answers.slice(0, -1).entries()) {
          expect(answer).toMatch(/^HTTP\/1\.1 201 Created\r\n/);
          expect(answer).toContain(JSON.stringify({ got: { name: "ABC"[i] } }));
        }
        expect(answers.at(-1)).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
        expect(answers.at(-1)).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/i);
      }
      // One wait per connection, not one more per chunk the client sends.
      expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("answers requests the adapter cannot make a Request of (no Host, a backslash in the path) with problem+json", async () => {
    for (const request of ["GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n", "GET /echo HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n", "GET /echo\\x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]) {
      const res = await raw(request);
      expect(res, request).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(res).toMatch(/\r\ncontent-type: application\/problem\+json\r\n/i);
      expect(res).toMatch(/"status":400/);
    }
  });

  it("answers OPTIONS * (a question about the server as a whole) with 204, and then serves the connection's next request", async () => {
    const res = await raw("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"name\":\"E\"}");
    expect(res).toMatch(/^HTTP\/1\.1 204 No Content\r\n/);
    expect(res).toMatch(/\r\n\r\nHTTP\/1\.1 201 Created\r\n/);
  });

  it("starts the request deadline once the body has arrived: a slow upload is not the database's 503", async () => {
    app.answerWithin(150);
    try {
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const body = JSON.stringify({ name: "Trickled" });
        const req = httpRequest({ host: "127.0.0.1", port: server.port, path: "/echo", method: "POST", headers: { "content-type": "application/json", "content-length": String(body.length) } }, (r) => {
          let text = "";
          r.setEncoding("utf8").on("data", (d: string) => (text += d));
          r.on("end", () => resolve({ status: r.statusCode!, body: text }));
        });
        req.on("error", reject);
        req.write(body.slice(0, 5));
        // The rest after twice the deadline: a client on a slow link.
        setTimeout(() => req.end(body.slice(5)), 400);
      });
      expect(res).toEqual({ status: 201, body: JSON.stringify({ got: { name: "Trickled" } }) });
    } finally {
      app.answerWithin(undefined);
    }
  });

  it("answers an Expect it cannot meet with 417 problem+json, and 100-continue as Node does", async () => {
    const res = await raw('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\nExpect: foo\r\nConnection: close\r\n\r\n{"name":"E"}');
    expect(res).toMatch(/^HTTP\/1\.1 417 Expectation Failed\r\n/);
    expect(res).toMatch(/\r\ncontent-type: application\/problem\+json\r\n/i);
    expect(JSON.parse(res.split("\r\n\r\n")[1]!)).toMatchObject({ status: 417, detail: "this server meets no expectation but 100-continue; got Expect: foo" });
    const continued = await raw('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n{"name":"E"}');
    expect(continued).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 Created\r\n/);
  });

  it("answers CONNECT with 405 problem+json instead of closing the connection without a word", async () => {
    const res = await raw("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    expect(res).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(res).toMatch(/\r\ncontent-type: application\/problem\+json\r\n/i);
    expect(JSON.parse(res.split("\r\n\r\n")[1]!)).toMatchObject({ status: 405 });
    // A client that keeps its side open does not keep the socket (nor a shutdown waiting on it),
    // and one that resets at once does not bring the process down.
    const own = await startHttpServer((req, env) => app.fetch(req, env), 0, "127.0.0.1");
    const open = connect({ port: own.port, host: "127.0.0.1", allowHalfOpen: true });
    onTestFinished(() => (open.destroy(), own.close())); // also when an assertion fails first
    open.on("error", () => {});
    open.write("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    await new Promise((answered) => open.on("end", answered).resume());
    const closed = await Promise.race([own.close().then(() => "closed"), new Promise((r) => setTimeout(() => r("held open"), 8_000))]);
    open.destroy();
    expect(closed).toBe("closed");
    const rudeClosed = Array.from({ length: 20 }, () => {
      const rude = connect(server.port, "127.0.0.1", () => rude.end("CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n", () => rude.resetAndDestroy()));
      rude.on("error", () => {});
      return new Promise((done) => rude.once("close", done));
    });
    await Promise.all(rudeClosed);
    expect(await raw("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")).toMatch(/^HTTP\/1\.1 405 /);
  });

  it("refuses a repeated Idempotency-Key, which Node would join into a key nobody sent", async () => {
    const keyed = (...keys: string[]) =>
      raw(`POST /keyed HTTP/1.1\r\nHost: x\r\n${keys.map((k) => `Idempotency-Key: ${k}\r\n`).join("")}Content-Length: 0\r\nConnection: close\r\n\r\n`);
    expect(JSON.parse((await keyed("a")).split("\r\n\r\n")[1]!)).toEqual({ key: "a" });
    expect(JSON.parse((await keyed("a, b")).split("\r\n\r\n")[1]!)).toEqual({ key: "a, b" });
    const twice = await keyed("a", "b");
    expect(twice).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(twice.split("\r\n\r\n")[1]!)).toMatchObject({ status: 400, errors: [{ in: "header", pointer: "/Idempotency-Key", detail: "is repeated" }] });
  });

  it("refuses a compressed body with 415 instead of reading its bytes as JSON text", async () => {
    const body = JSON.stringify({ name: "Ada" });
    for (const coding of ["gzip", "br", "identity, gzip"]) {
      const res = await post(body, { "content-type": "application/json", "content-length": String(body.length), "content-encoding": coding });
      expect(res.status, coding).toBe(415);
      expect(res.type).toBe("application/problem+json");
      expect(JSON.parse(res.body)).toMatchObject({ status: 415, detail: expect.stringMatching(/content-encoding/i) });
    }
    const plain = await post(body, { "content-type": "application/json", "content-length": String(body.length), "content-encoding": "identity" });
    expect(plain.status).toBe(201);
  });

  it("refuses a body declared in a charset other than UTF-8 with 415, and one in a transfer coding it cannot undo with 501", async () => {
    const body = JSON.stringify({ name: "Ada" });
    for (const type of ["application/json; charset=utf-16", "application/json;charset=\"latin1\"", "application/json; charset="]) {
      const res = await post(body, { "content-type": type, "content-length": String(body.length) });
      expect(res.status, type).toBe(415);
      expect(JSON.parse(res.body)).toMatchObject({ status: 415, detail: expect.stringMatching(/^the request body must be JSON in UTF-8; got charset=/) });
    }
    for (const type of ["application/json; charset=utf-8", "application/json; charset=UTF8", "application/json; Charset=\"UTF-8\""]) {
      expect((await post(body, { "content-type": type, "content-length": String(body.length) })).status, type).toBe(201);
    }
    const coded = await raw(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
    expect(coded).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(JSON.parse(coded.split("\r\n\r\n")[1]!)).toMatchObject({ status: 501, detail: 'the only transfer coding this server reads is chunked; got Transfer-Encoding: "gzip, chunked"' });
    // Without chunked last the body has no end (RFC 9112 §6.3): a 400 that says so.
    const unframed = await raw(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n${body}`);
    expect(unframed).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(unframed.split("\r\n\r\n")[1]!)).toMatchObject({ status: 400, detail: "the request's Transfer-Encoding must end in chunked, applied once; otherwise where its body ends cannot be known" });
    const twice = await raw(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked, chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
    expect(JSON.parse(twice.split("\r\n\r\n")[1]!)).toMatchObject({ status: 400, detail: expect.stringMatching(/^the request's Transfer-Encoding must end in chunked, applied once/) });
    const chunked = await raw(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
    expect(chunked).toMatch(/^HTTP\/1\.1 201 /);
    const unknown = await raw("FOO /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(unknown).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(JSON.parse(unknown.split("\r\n\r\n")[1]!)).toMatchObject({ status: 501, detail: "the request method is not one this server knows" });
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
