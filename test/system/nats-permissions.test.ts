import postgres from "postgres";
import { describe, expect, it, onTestFinished } from "vitest";
import { startOwnNatsServer, startSystem, waitFor } from "@orderflow/shared/testing";
import { registerOk, waitForCount, waitForWelcome } from "./helpers.js";

describe("a NATS account that allows its users only their own reply subjects", () => {
  it("runs the whole flow with NATS_INBOX_PREFIX: streams, consumers and the relay's acks", async () => {
    // The test's own client connects without credentials (no_auth_user); the services as `svc`,
    // who may subscribe to nothing but orderflow_r.> (so not to the default _INBOX.>).
    const nats = await startOwnNatsServer({
      config: `authorization { users = [
        { user: admin, password: admin }
        { user: svc, password: svc, permissions: { publish: ">", subscribe: { allow: "orderflow_r.>" } } }
      ] }
      no_auth_user: admin`,
    });
    onTestFinished(() => nats.dispose());
    const sys = await startSystem({ natsUrl: nats.url, env: { NATS_USER: "svc", NATS_PASSWORD: "svc", NATS_INBOX_PREFIX: "orderflow_r" } });
    onTestFinished(() => sys.cleanup());
    const { "user-service": users, "order-service": orders } = sys.services;

    const user = await registerOk(users.url);
    expect((await waitForWelcome(orders.url, user.id)).filter((o) => o.source === "registration")).toHaveLength(1);
    await waitForCount(users.url, user.id, 1);
    // Both outboxes empty: each relay got its publish acks (a row stays until its ack comes).
    for (const svc of [users, orders]) {
      const sql = postgres(svc.database.url, { max: 1, onnotice: () => {} });
      try {
        await waitFor(async () => (await sql`select count(*)::int as n from outbox`)[0]!.n === 0, { what: `${svc.name}'s outbox to empty`, timeoutMs: 10_000 });
      } finally {
        await sql.end();
      }
    }
  });

  it("exits 1 to be restarted when NATS refuses its credentials for good, instead of serving on with nothing published", async () => {
    const accounts = (password: string) => `authorization { users = [ { user: admin, password: admin }, { user: svc, password: ${password} } ] }
      no_auth_user: admin`;
    const nats = await startOwnNatsServer({ config: accounts("pw-a") });
    onTestFinished(() => nats.dispose());
    const sys = await startSystem({ natsUrl: nats.url, env: { NATS_USER: "svc", NATS_PASSWORD: "pw-a" } });
    onTestFinished(() => sys.cleanup());
    const users = sys.services["user-service"];
    // The password is rotated on the server; the running service still has the old one.
    nats.reconfigure(accounts("pw-b"));
    const exit = await users.proc.exitWithin(60_000);
    expect(exit.code).toBe(1);
    expect(users.proc.output.join("\n")).toMatch(/NATS connection closed for good; exiting to be restarted/);
  });
});
