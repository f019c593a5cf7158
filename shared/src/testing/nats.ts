import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { randomBytes } from "node:crypto";
import { createNames, type Names } from "../nats/names.js";
import { teardown } from "./teardown.js";

export const testNatsUrl = (env: Record<string, string | undefined> = process.env) => env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";

/** A namespace no other run uses: streams, subjects and durables are prefixed with it. */
export const uniqueNamespace = () => `t${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;

/** Deletes every stream whose name starts with the namespace (consumers go with them). */
export async function deleteNamespace(nc: NatsConnection, namespace: string): Promise<void> {
  if (!namespace) throw new Error("refusing to delete the empty namespace");
  const jsm = await jetstreamManager(nc);
  const doomed: string[] = [];
  for await (const name of jsm.streams.names()) if (name.startsWith(`${namespace}_`)) doomed.push(name);
  for (const name of doomed) await jsm.streams.delete(name);
}

/**
 * deleteNamespace through `nc`, retried for up to `timeoutMs`: after a fault test's outage `nc` may
 * still be reconnecting (its requests time out) or have given up (closed), and a cluster may be
 * electing leaders. A closed `nc` is replaced by a fresh connection to `url` for the attempt.
 */
export async function deleteNamespaceWithin(nc: NatsConnection, url: string, namespace: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const own = nc.isClosed() ? await connect({ servers: url, noAsyncTraces: true, timeout: 5_000 }).catch(() => undefined) : undefined;
    try {
      if (nc.isClosed() && !own) throw new Error(`NATS at ${url} is not reachable`);
      return await deleteNamespace(own ?? nc, namespace);
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await own?.close().catch(() => {});
    }
  }
}

export const connectTestNats = (url = testNatsUrl()) => connect({ servers: url, noAsyncTraces: true });

/**
 * Publishes with header lines written as given, over a raw connection: nats.js refuses to send a
 * header key with a space or a colon, but nats-server stores whatever a client writes, so this is
 * how a test plants one. Resolves once the server has answered a PING after it (it has the message).
 */
export async function publishRawHeaders(subject: string, headerLines: string[], body: string, url = testNatsUrl()): Promise<void> {
  const { hostname, port } = new URL(url);
  const { connect: tcp } = await import("node:net");
  const head = `NATS/1.0\r\n${headerLines.map((l) => `${l}\r\n`).join("")}\r\n`;
  const hlen = Buffer.byteLength(head);
  const total = hlen + Buffer.byteLength(body);
  await new Promise<void>((resolve, reject) => {
    const socket = tcp({ host: hostname, port: Number(port) || 4222 });
    let seen = "";
    socket.on("error", reject);
    socket.on("data", (chunk) => {
      seen += chunk.toString("utf8");
      if (seen.includes("-ERR")) reject(new Error(`nats-server refused the raw publish: ${seen.trim()}`));
      else if (seen.includes("PONG")) socket.end(() => resolve());
    });
    socket.once("connect", () => {
      socket.write(`CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":false}\r\nHPUB ${subject} ${hlen} ${total}\r\n${head}${body}\r\nPING\r\n`);
    });
  });
}

/** A connection to the test NATS and a namespace of its own, for a test file's streams. */
export interface TestNamespace {
  nc: NatsConnection;
  jsm: JetStreamManager;
  names: Names;
  /** Deletes the namespace's streams and closes the connection, each whatever the other did. */
  dispose(): Promise<void>;
}

export async function openTestNamespace(): Promise<TestNamespace> {
  const names = createNames(uniqueNamespace());
  const nc = await connectTestNats();
  const dispose = () =>
    teardown(
      () => deleteNamespace(nc, names.namespace),
      () => nc.close(),
    );
  try {
    return { nc, jsm: await jetstreamManager(nc), names, dispose };
  } catch (err) {
    await dispose().catch(() => {});
    throw err;
  }
}
