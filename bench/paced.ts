import { connect, type Socket } from "node:net";
import { Fifo } from "@orderflow/shared";

export interface PacedResult {
  seconds: number;
  statuses: Record<string, number>;
  errors: number;
  /** Scheduled send time → last byte of the response, sorted ascending. */
  latenciesMs: number[];
}

interface Job {
  i: number;
  scheduledAt: number;
}

interface Conn {
  socket: Socket;
  pending: Buffer;
  job: Job | undefined;
  dead: boolean;
}

const HEADER_END = Buffer.from("\r\n\r\n");
const CHUNKED_END = Buffer.from("\r\n0\r\n\r\n");

/**
 * Where a complete HTTP/1.1 response ends in `buf`, or -1 while more bytes are due: after
 * Content-Length bytes of body, or the last chunk of a chunked body. Enough for the JSON and
 * problem+json answers of the services; anything else is reported as unparseable (-2).
 */
export function responseEnd(buf: Buffer): number {
  const head = buf.indexOf(HEADER_END);
  if (head < 0) return -1;
  const headers = buf.toString("latin1", 0, head);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
  if (length) {
    const end = head + 4 + Number(length[1]);
    return buf.length >= end ? end : -1;
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(headers)) {
    const last = buf.indexOf(CHUNKED_END, head);
    return last < 0 ? -1 : last + CHUNKED_END.length;
  }
  return -2;
}

/**
 * Open-loop load at a steady rate over `connections` keep-alive sockets: request i is due at
 * start + i/rate s and is sent then on a free connection (or as soon as one frees up), and its
 * latency counts from that due time, so queueing is not hidden.
 *
 * Requests are written as prebuilt bytes and answers are only framed (status line, length):
 * node's http client cost ~300 µs of CPU per request here, a fifth of both cores at 1,000/s,
 * taken from the system it measures; this costs a fraction of that. A connection that fails is
 * not replaced: its request and, once none is left, the waiting ones count as errors, as does
 * anything unanswered `drainMs` after the last request was due.
 */
export async function pacedLoad({
  url,
  path,
  seconds,
  rate,
  connections,
  body,
  drainMs = 30_000,
}: {
  url: string;
  path: string;
  seconds: number;
  rate: number;
  connections: number;
  body: (i: number) => string;
  drainMs?: number;
}): Promise<PacedResult> {
  const { hostname, port } = new URL(url);
  const head = `POST ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nContent-Length: `;
  const statuses: Record<string, number> = {};
  const latencies: number[] = [];
  let errors = 0;
  const waiting = new Fifo<Job>();
  const idle: Conn[] = [];
  const all: Conn[] = [];
  let settled = 0;
  let allSettled: (() => void) | undefined;

  const finish = (job: Job, status?: string) => {
    if (status === undefined) errors += 1;
    else {
      statuses[status] = (statuses[status] ?? 0) + 1;
      latencies.push(performance.now() - job.scheduledAt);
    }
    settled += 1;
    if (settled === total) allSettled?.();
  };

  const dispatch = (c: Conn, job: Job) => {
    c.job = job;
    const b = body(job.i);
    c.socket.write(`${head}${Buffer.byteLength(b)}\r\n\r\n${b}`);
  };

  const take = (): Conn | undefined => {
    let c: Conn | undefined;
    while ((c = idle.pop()) && c.dead);
    return c;
  };

  // Every connection gone: nothing can answer what is still waiting.
  const failWaiting = () => {
    for (let job = waiting.shift(); job; job = waiting.shift()) finish(job);
  };

  const release = (c: Conn) => {
    const next = waiting.shift();
    if (next) dispatch(c, next);
    else idle.push(c);
  };

  const open = () =>
    new Promise<Conn>((resolve, reject) => {
      const socket = connect(Number(port), hostname);
      socket.setNoDelay(true);
      const c: Conn = { socket, pending: Buffer.alloc(0), job: undefined, dead: false };
      all.push(c);
      const die = () => {
        if (c.dead) return;
        c.dead = true;
        if (c.job) finish(c.job);
        c.job = undefined;
        if (all.every((x) => x.dead)) failWaiting();
      };
      socket.once("connect", () => resolve(c));
      socket.once("error", (err) => {
        die();
        reject(err);
      });
      socket.on("close", die);
      socket.on("data", (chunk: Buffer) => {
        if (c.dead) return;
        c.pending = c.pending.length === 0 ? chunk : Buffer.concat([c.pending, chunk]);
        const end = responseEnd(c.pending);
        if (end === -1) return;
        const job = c.job;
        if (end === -2 || !job) {
          // Not a response this client can frame (or one it did not ask for): drop the socket;
          // `die` counts its request as an error.
          die();
          socket.destroy();
          return;
        }
        c.job = undefined;
        finish(job, c.pending.toString("latin1", 9, 12));
        c.pending = c.pending.subarray(end);
        release(c);
      });
    });

  const total = Math.round(rate * seconds);
  try {
    idle.push(...(await Promise.all(Array.from({ length: connections }, open))));
  } catch (err) {
    for (const c of all) c.socket.destroy();
    throw err;
  }
  const done = new Promise<void>((resolve) => (allSettled = resolve));
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    while (sent < total && start + (sent * 1000) / rate <= now) {
      const job = { i: sent, scheduledAt: start + (sent * 1000) / rate };
      sent += 1;
      const c = take();
      if (c) dispatch(c, job);
      else if (all.every((x) => x.dead)) finish(job);
      else waiting.push(job);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  if (total > 0) {
    // Sockets still owing an answer after drainMs are destroyed; `die` counts their requests.
    const giveUp = setTimeout(() => {
      for (const c of all) c.socket.destroy();
    }, drainMs);
    await done;
    clearTimeout(giveUp);
  }
  const elapsed = (performance.now() - start) / 1000;
  for (const c of all) c.socket.destroy();
  return { seconds: elapsed, statuses, errors, latenciesMs: latencies.sort((a, b) => a - b) };
}
