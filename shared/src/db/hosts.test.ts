import { describe, expect, it, onTestFinished } from "vitest";
import { openDatabase, pingWithin } from "./database.js";
import { postgresHosts } from "./hosts.js";
import { baseConfigSchema, loadConfig } from "../config/config.js";
import { adminDatabaseUrl } from "../testing/database.js";
import { tcpRelay } from "../testing/tcp-relay.js";

describe("IPv6 literals in DATABASE_URL", () => {
  it("connects to a Postgres reached at [::1], alone or as one of several hosts", async (ctx) => {
    // The machine's Postgres listens on 127.0.0.1 only: a relay makes it reachable at ::1.
    const admin = new URL(adminDatabaseUrl());
    const relay = tcpRelay({ host: admin.hostname, port: Number(admin.port || 5432) }, 0, "::1");
    try {
      await relay.listen();
    } catch (err) {
      // A host (a container) without IPv6 has no ::1 to listen on.
      if ((err as NodeJS.ErrnoException).code === "EADDRNOTAVAIL" || (err as NodeJS.ErrnoException).code === "EAFNOSUPPORT") return ctx.skip("no IPv6 loopback here");
      throw err;
    }
    onTestFinished(() => relay.close());
    const user = admin.username ? `${admin.username}@` : "";
    const urls = [
      `postgres://${user}[::1]:${relay.port}/postgres`,
      // Tried in order: the first refuses (nothing listens on port 1), the second answers.
      `postgresql://${user}[::1]:1,[0:0:0:0:0:0:0:1]:${relay.port}/postgres?sslmode=disable`,
    ];
    for (const url of urls) {
      expect(() => loadConfig(baseConfigSchema, { DATABASE_URL: url, NATS_URL: "nats://127.0.0.1:4222" }), url).not.toThrow();
      const database = await openDatabase(url, { poolSize: 1 });
      try {
        await pingWithin(database, 5000);
      } finally {
        await database.close();
      }
    }
  });

  it("reads hosts and ports as libpq writes them, and leaves URLs without an IPv6 literal to the driver", () => {
    expect(postgresHosts("postgres://u:p@[::1]/db")).toEqual({ host: ["::1"], port: [5432] });
    expect(postgresHosts("postgres://u@[fd00::2]:6432,db.example:5433,[::1]/db?sslmode=require")).toEqual({ host: ["fd00::2", "db.example", "::1"], port: [6432, 5433, 5432] });
    expect(postgresHosts("postgres://u@db.example:5432/db")).toBeUndefined();
    expect(postgresHosts("postgres://u@127.0.0.1,db2/db")).toBeUndefined();
    // A zone (a link-local address's interface) cannot be dialled: config refuses it in a sentence.
    expect(() => loadConfig(baseConfigSchema, { DATABASE_URL: "postgres://u@[fe80::1%25eth0]:5432/db", NATS_URL: "nats://127.0.0.1:4222" })).toThrow(/DATABASE_URL has an IPv6 address with a zone/);
  });
});
