import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpRelay {
  readonly port: number;
  /** Starts (again) relaying connections to the target on `port`. */
  listen(): Promise<void>;
  /** Cuts every relayed connection and stops listening: the target looks down, connections are refused. */
  close(): Promise<void>;
  /**
   * Connections, open and new, stop carrying bytes while nothing fails: a blackholed network
   * (a half-open connection), where a query just waits.
   */
  stall(): void;
  /** Stalled connections carry their bytes again, those held back included. */
  resume(): void;
}

/**
 * A TCP relay to `target` on a port of its own, for outages of a server a test must not stop
 * (the machine's shared Postgres): "down" is the relay cutting its connections and refusing new
 * ones. Starts closed; `port` is 0 until the first `listen()` unless one is given.
 */
/** `host` is the address it listens on (`::1` to be reached over IPv6). */
export function tcpRelay(target: { host: string; port: number }, port = 0, host = "127.0.0.1"): TcpRelay {
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let server: Server | undefined;
  let bound = port;
  let stalled = false;
  const flow = ([client, upstream]: [Socket, Socket]) => client.pipe(upstream).pipe(client);
  return {
    get port() {
      return bound;
    },
    listen: () =>
      new Promise<void>((resolve, reject) => {
        server = createServer((client) => {
          const upstream = connect(target.port, target.host);
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on("close", () => sockets.delete(s));
            s.on("error", () => {});
          }
          const pair: [Socket, Socket] = [client, upstream];
          pairs.add(pair);
          client.on("close", () => pairs.delete(pair));
          if (!stalled) flow(pair);
        });
        server.once("error", reject);
        server.listen(bound, host, () => {
          bound = (server!.address() as { port: number }).port;
          resolve();
        });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (!server) return resolve();
        server.close(() => resolve());
        server = undefined;
      }),
    stall() {
      stalled = true;
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream).pause();
        upstream.unpipe(client).pause();
      }
    },
    resume() {
      stalled = false;
      for (const pair of pairs) flow(pair);
    },
  };
}

/** A relay to the Postgres server behind `url`; `viaRelay(url)` is that URL through it. */
export function postgresRelay(url: string, port = 0) {
  const target = new URL(url);
  const relay = tcpRelay({ host: target.hostname, port: Number(target.port || 5432) }, port);
  return Object.assign(relay, {
    viaRelay(databaseUrl: string) {
      const u = new URL(databaseUrl);
      u.hostname = "127.0.0.1";
      u.port = String(relay.port);
      return u.toString();
    },
  });
}
