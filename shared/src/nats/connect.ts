import { readFileSync } from "node:fs";
import { AuthorizationError, connect, credsAuthenticator, UserAuthenticationExpiredError, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { BaseConfig } from "../config/config.js";
import { abortableDelay, backoffMs } from "../lifecycle/delay.js";
import { watchOutages } from "./outage.js";

/** The settings of a NATS client that come from the environment. */
export type NatsClientConfig = Pick<BaseConfig, "NATS_URL" | "NATS_USER" | "NATS_PASSWORD" | "NATS_TOKEN" | "NATS_INBOX_PREFIX"> &
  Partial<Pick<BaseConfig, "NATS_CREDS_FILE" | "NATS_TLS_CA_FILE" | "NATS_TLS_CERT_FILE" | "NATS_TLS_KEY_FILE">>;

/** nats.js connection options from the environment's settings: services and CLIs connect alike. */
export function natsClientOptions(config: NatsClientConfig): Pick<ConnectionOptions, "servers" | "user" | "pass" | "token" | "inboxPrefix" | "authenticator" | "tls"> {
  const servers = config.NATS_URL.split(",").map((s) => s.trim());
  // Paths, not contents: nats.js reads them at every (re)connect, so renewed files are picked up.
  const files = { caFile: config.NATS_TLS_CA_FILE, certFile: config.NATS_TLS_CERT_FILE, keyFile: config.NATS_TLS_KEY_FILE };
  const tls = Object.values(files).some((f) => f !== undefined) ? Object.fromEntries(Object.entries(files).filter(([, f]) => f !== undefined)) : undefined;
  return {
    // The Node transport ignores the URL's scheme: without this a tls:// server that offers no
    // TLS would be used in plain text, credentials included. With it the client requires TLS
    // (of every server listed) and refuses a server without it. CAs: NATS_TLS_CA_FILE's alone if
    // set, else the system's plus NODE_EXTRA_CA_CERTS.
    ...(tls || servers.some((s) => /^tls:\/\//i.test(s)) ? { tls: tls ?? {} } : {}),
    // Read once, at connect: a rotated file takes effect on the next start.
    ...(config.NATS_CREDS_FILE ? { authenticator: credsAuthenticator(readFileSync(config.NATS_CREDS_FILE)) } : {}),
    servers,
    user: config.NATS_USER,
    pass: config.NATS_PASSWORD,
    token: config.NATS_TOKEN,
    inboxPrefix: config.NATS_INBOX_PREFIX,
  };
}

export interface NatsOptions {
  config: NatsClientConfig;
  name: string;
  log: Logger;
  /**
   * Errors not worth another attempt, thrown at once. A service leaves it unset and keeps trying
   * (a rotated credentials Secret can fix it); a CLI passes isCredentialError, so a wrong password
   * is said at once instead of as "not reachable" after its connect deadline.
   */
  giveUpOn?: (err: unknown) => boolean;
  /**
   * How long a lost connection may stay lost before a one-off connect asks why, and then how
   * often it asks again (5 s and 60 s by default). nats.js keeps the reasons its reconnects fail
   * to itself, so without this a renewed certificate the server refuses, or credentials it no
   * longer takes, would show as one "nats disconnected" and nothing after.
   */
  diagnoseAfterMs?: { first: number; every: number };
}

/** The server refused who we are, or the credentials could not even be read. */
export function isCredentialError(err: unknown): boolean {
  return err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError || /unable to parse credentials/i.test((err as Error)?.message ?? "");
}

/** Live view of the connection for readiness: false while disconnected or reconnecting. */
export interface NatsState {
  connected(): boolean;
}

/**
 * Connects with reconnects that never give up (jittered), and keeps trying the first connect
 * too, so a service started before NATS becomes ready when NATS comes up instead of crashing.
 * `noAsyncTraces` keeps a stack capture off every request's hot path.
 */
export async function connectNats(opts: NatsOptions, signal?: AbortSignal): Promise<{ nc: NatsConnection; state: NatsState }> {
  const { log } = opts;
  let attempt = 0;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const nc = await connect({
        ...natsClientOptions(opts.config),
        name: opts.name,
        maxReconnectAttempts: -1,
        // How long one (re)connect may take. nats.js waits 20 s by default, and a reconnect whose
        // TLS handshake the server ends (a client certificate it refuses: TLS 1.3 says so after
        // the handshake) is not failed before then, so a certificate fixed on disk was picked up
        // up to 20 s late. 5 s is still far above a handshake's few round trips (nats.go's is 2 s).
        timeout: 5000,
        reconnectTimeWait: 1000,
        reconnectJitter: 500,
        pingInterval: 10_000,
        maxPingOut: 3,
        noAsyncTraces: true,
      });
      let connected = true;
      const outages = watchOutages({ ...(opts.diagnoseAfterMs ?? { first: 5_000, every: 60_000 }), probe: () => stillDisconnectedCause(opts.config), log });
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === "disconnect" || s.type === "reconnecting") {
            if (connected) log.warn({ status: s.type }, "nats disconnected");
            connected = false;
            outages.lost();
          } else if (s.type === "reconnect") {
            connected = true;
            outages.restored();
            log.info("nats reconnected");
          } else if (s.type === "error" && !connected) {
            // What the server said to a reconnect (e.g. "Authorization Violation"): nats.js tells it here.
            outages.told(s.error.message);
          }
        }
        outages.stop();
      })();
      log.info({ server: nc.getServer() }, "nats connected");
      return { nc, state: { connected: () => connected && !nc.isClosed() } };
    } catch (err) {
      if (opts.giveUpOn?.(err)) throw err;
      attempt += 1;
      const delay = backoffMs(attempt, 250) * (0.5 + Math.random() / 2);
      if (attempt === 1 || attempt % 10 === 0) {
        log.warn({ err: (err as Error).message, ...(await timeoutCause(err, opts.config, signal)), attempt }, "nats not reachable yet; retrying");
      }
      await abortableDelay(delay, signal);
    }
  }
}

/** One attempt, without reconnects: it fails with the server's or the handshake's own error. */
const connectOnce = (config: NatsClientConfig, timeoutMs: number) =>
  connect({ ...natsClientOptions(config), name: "orderflow-check", timeout: timeoutMs, reconnect: false, noAsyncTraces: true });

/**
 * Why a new connection to the configured servers fails now, asked with one attempt of the
 * client's own settings (certificates, credentials); undefined when it succeeds.
 */
async function stillDisconnectedCause(config: NatsClientConfig): Promise<string | undefined> {
  try {
    await (await connectOnce(config, 3000)).close();
    return undefined;
  } catch (err) {
    return ((err as Error)?.message ?? String(err)).trim() || "unknown";
  }
}

/**
 * What lies behind a connect that timed out. A reconnecting nats.js client reports a TLS
 * handshake the server ended (a client certificate it does not take: TLS 1.3 says so only after
 * the client has sent its first bytes) as "timeout" when its connect timeout runs out; one
 * attempt without reconnects gets the alert itself ("…alert bad certificate") at once, or the
 * reset that followed it.
 */
export async function timeoutCause(err: unknown, config: NatsClientConfig, signal?: AbortSignal): Promise<{ cause?: string }> {
  if ((err as Error)?.message !== "timeout" || signal?.aborted) return {};
  const attempt = connectOnce(config, 3000);
  // A shutdown (SIGTERM, Ctrl-C) does not wait for the answer; the attempt is closed when it comes.
  let onAbort = () => {};
  const stopped = new Promise<"stopped">((done) => signal?.addEventListener("abort", (onAbort = () => done("stopped")), { once: true }));
  try {
    const nc = await Promise.race([attempt, stopped]);
    if (nc === "stopped") {
      void attempt.then((c) => c.close(), () => {});
      return {};
    }
    await nc.close();
    return {};
  } catch (cause) {
    const message = ((cause as Error)?.message ?? String(cause)).trim();
    return message && message !== "timeout" ? { cause: message } : {};
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Why JetStream does not answer at the configured NATS (undefined when it does), asked once with
 * a deadline: for `npm start`, which can tell a reachable server started without `-js` from a
 * working one before the services sit not-ready with no hint why.
 */
export async function jetStreamProblem(config: NatsClientConfig, timeoutMs = 3000): Promise<{ message: string; credentials: boolean } | undefined> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connectOnce(config, timeoutMs);
    await jetstreamManager(nc, { timeout: timeoutMs });
    return undefined;
  } catch (err) {
    return { message: (err as Error)?.message ?? String(err), credentials: isCredentialError(err) };
  } finally {
    await nc?.close().catch(() => {});
  }
}
