import { describe, expect, it, onTestFinished } from "vitest";
import { startSystem } from "@orderflow/shared/testing";
import { checkExactlyOnce, deadLetters, readLedger, registrationLoad, report, streamMessages, waitSettled } from "./helpers.js";

// Default retry budget: messages waiting in a consumer's pull buffer across a kill are simply
// redelivered (consumer-backoff.test.ts pins down that none is dropped by the server).
const env = {};

// Jepsen-style: SIGKILL gives a process no chance to finish a handler, ack, or mark an outbox
// row; the inbox, the outbox and the stream's duplicate window must make up for all of it.
describe("kill -9", () => {
  it("order-service killed repeatedly while registrations stream in: one welcome order per user", async () => {
    const sys = await startSystem({ env });
    onTestFinished(() => sys.cleanup());
    const { "user-service": users, "order-service": orders } = sys.services;
    const load = registrationLoad([users.url], { workers: 4 });
    const kills = 3;
    try {
      for (let i = 0; i < kills; i++) {
        await load.more(25);
        const exit = await orders.proc.kill("SIGKILL");
        expect(exit.signal).toBe("SIGKILL");
        await load.more(15); // registrations pile up in the stream while it is dead
        await orders.restart();
      }
      await load.more(25);
    } finally {
      await load.stop();
    }
    await waitSettled(sys);
    const ledger = await readLedger(sys);
    const check = checkExactlyOnce(ledger, load.accepted);
    expect(load.unexpectedStatuses()).toEqual({});
    report("kill -9 order-service x3", {
      sent: load.sent,
      accepted: load.accepted.length,
      applied: [...ledger.welcomes.values()].filter((n) => n > 0).length,
      deadLettered: await streamMessages(sys.nc, sys.namespace, "DLQ"),
      duplicates: check.duplicateWelcomes,
      committedUsers: ledger.users.size,
      orderInbox: ledger.orderInbox,
      kills,
    });
    // Why anything was dead-lettered, so a failure says more than a count.
    for (const line of await deadLetters(sys.nc, sys.namespace)) console.log(`[reliability]   DLQ ${line}`);
    expect(check).toEqual({ missingAccepted: [], unknownCustomers: [], withoutWelcome: [], duplicateWelcomes: 0, wrongCounts: 0 });
    expect(ledger.customers.size).toBe(ledger.users.size);
    expect(ledger.orderInbox).toBe(ledger.users.size);
    expect(await streamMessages(sys.nc, sys.namespace, "DLQ")).toBe(0);
  }, 120_000);

  it("user-service killed during a registration load: every 201 delivered once in effect, no event without a commit", async () => {
    const sys = await startSystem({ env });
    onTestFinished(() => sys.cleanup());
    const { "user-service": users } = sys.services;
    const load = registrationLoad([users.url], { workers: 6 });
    const kills = 2;
    try {
      for (let i = 0; i < kills; i++) {
        await load.more(30);
        await users.proc.kill("SIGKILL"); // requests in flight lose their answers
        await users.restart();
      }
      await load.more(30);
    } finally {
      await load.stop();
    }
    await waitSettled(sys);
    const ledger = await readLedger(sys);
    const check = checkExactlyOnce(ledger, load.accepted);
    expect(load.unexpectedStatuses()).toEqual({});
    const events = await streamMessages(sys.nc, sys.namespace, "USERS");
    report("kill -9 user-service x2", {
      sent: load.sent,
      accepted: load.accepted.length,
      applied: ledger.customers.size,
      deadLettered: await streamMessages(sys.nc, sys.namespace, "DLQ"),
      duplicates: check.duplicateWelcomes,
      committedUsers: ledger.users.size,
      lostAnswers: load.networkErrors,
      usersRegisteredEvents: events,
      kills,
    });
    expect(check).toEqual({ missingAccepted: [], unknownCustomers: [], withoutWelcome: [], duplicateWelcomes: 0, wrongCounts: 0 });
    // Equal sets: the order service knows exactly the committed users, no more, no fewer.
    expect([...ledger.customers].sort()).toEqual([...ledger.users].sort());
    // One users.registered per committed user: none for a rolled-back request, none twice.
    expect(events).toBe(ledger.users.size);
  }, 120_000);
});
