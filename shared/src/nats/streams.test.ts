import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectTestNats, deleteNamespace, uniqueNamespace } from "../testing/index.js";
import { createNames } from "./names.js";
import { ensureStreams } from "./streams.js";

const names = createNames(uniqueNamespace());
let nc: NatsConnection;
let jsm: JetStreamManager;
beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  await deleteNamespace(nc, names.namespace);
  await nc.close();
});

describe("ensureStreams", () => {
  it("says when a stream has fewer copies than the replicas asked for, as on a single server that takes the update", async () => {
    const told: [string, number, number][] = [];
    const settings = (replicas: number) => ({ replicas, maxAgeMs: 3600_000, onUnderReplicated: (s: string, asked: number, copies: number) => void told.push([s, asked, copies]) });
    expect(await ensureStreams(jsm, names, ["USERS"], settings(1))).toEqual(["USERS"]);
    expect(told).toEqual([]);
    // The suite's server is a single one. nats-server 2.9 takes the update and reports 3
    // replicas in the config while it keeps one copy; a newer one may refuse it outright.
    const outcome = await ensureStreams(jsm, names, ["USERS"], settings(3)).then(
      () => "updated",
      (err: Error) => err.message,
    );
    if (outcome === "updated") expect(told).toEqual([[names.stream("USERS"), 3, 1]]);
    else expect(outcome).toMatch(/replicas/i);
  });

  it("gives the DLQ its own max_age, and moves an existing DLQ to it", async () => {
    const hour = 3600_000;
    const maxAge = async (logical: "ORDERS" | "DLQ") => (await jsm.streams.info(names.stream(logical))).config.max_age;
    // As an earlier version left it: the DLQ expiring with the history.
    await ensureStreams(jsm, names, ["ORDERS", "DLQ"], { replicas: 1, maxAgeMs: hour });
    expect(await maxAge("DLQ")).toBe(nanos(hour));
    await ensureStreams(jsm, names, ["ORDERS", "DLQ"], { replicas: 1, maxAgeMs: hour, deadLetterMaxAgeMs: 0 });
    expect([await maxAge("ORDERS"), await maxAge("DLQ")]).toEqual([nanos(hour), 0]);
  });
});
