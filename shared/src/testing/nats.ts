import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { randomBytes } from "node:crypto";

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

export const connectTestNats = (url = testNatsUrl()) => connect({ servers: url, noAsyncTraces: true });
