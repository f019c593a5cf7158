import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nanos } from "@nats-io/nats-core";
import { openTestNamespace, type TestNamespace } from "../testing/index.js";
import { ensureStreams } from "./streams.js";

let t: TestNamespace;
beforeAll(async () => void (t = await openTestNamespace()));
afterAll(() => t?.dispose());

describe("ensureStreams", () => {
  it("says when a stream has fewer copies than the replicas asked for, as on a single server that takes the update", async () => {
    const told: [string, number, number][] = [];
    const settings = (replicas: number) => ({ replicas, maxAgeMs: 3600_000, onUnderReplicated: (s: string, asked: number, copies: number) => void told.push([s, asked, copies]) });
    expect(await ensureStreams(t.jsm, t.names, ["USERS"], settings(1))).toEqual(["USERS"]);
    expect(told).toEqual([]);
    // The suite's server is a single one. nats-server 2.9 takes the update and reports 3
    // replicas in the config while it keeps one copy; a newer one may refuse it outright.
    const outcome = await ensureStreams(t.jsm, t.names, ["USERS"], settings(3)).then(
      () => "updated",
      (err: Error) => err.message,
    );
    if (outcome === "updated") expect(told).toEqual([[t.names.stream("USERS"), 3, 1]]);
    else expect(outcome).toMatch(/replicas/i);
  });

  it("gives the DLQ its own max_age, and moves an existing DLQ to it", async () => {
    const hour = 3600_000;
    const maxAge = async (logical: "ORDERS" | "DLQ") => (await t.jsm.streams.info(t.names.stream(logical))).config.max_age;
    // As an earlier version left it: the DLQ expiring with the history.
    await ensureStreams(t.jsm, t.names, ["ORDERS", "DLQ"], { replicas: 1, maxAgeMs: hour });
    expect(await maxAge("DLQ")).toBe(nanos(hour));
    await ensureStreams(t.jsm, t.names, ["ORDERS", "DLQ"], { replicas: 1, maxAgeMs: hour, deadLetterMaxAgeMs: 0 });
    expect([await maxAge("ORDERS"), await maxAge("DLQ")]).toEqual([nanos(hour), 0]);
  });
});
