import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { DiscardPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/nats-core";
import { connectTestNats, deleteNamespace, testNatsUrl, uniqueNamespace } from "../testing/nats.js";
import { startOwnNatsServer } from "../testing/nats-server.js";
import { startProcess } from "../testing/process.js";
import { tcpRelay } from "../testing/tcp-relay.js";
import { waitFor } from "../testing/wait.js";
import { operatorMode } from "../testing/nats-jwt.js";
import { createTestPki, natsServerTls } from "../testing/tls.js";
import { teardown } from "../testing/teardown.js";
import { DlqHeaders } from "../consumer/dead-letter.js";
import { createNames, type Names } from "../nats/names.js";
import { ensureStreams } from "../nats/streams.js";
import { formatDeadLetter, formatDeadLetterTable, getDeadLetter, listDeadLetters, purgeAllDeadLetters, purgeDeadLetter, replayAllDeadLetters, replayDeadLetter } from "./dead-letters.js";
import { main, parseDlqArgs, runDlqCommand, UsageError } from "./dlq.js";

let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let names: Names;
const namespace = uniqueNamespace();

beforeAll(async () => {
  nc = await connectTestNats();
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  names = createNames(namespace);
  await ensureStreams(jsm, names, ["USERS", "DLQ"], { replicas: 1, maxAgeMs: 3600_000 });
});
// Both steps, whatever the other did; a namespace left on the shared server fails the run.
afterAll(() =>
  teardown(
    () => nc && deleteNamespace(nc, namespace),
    () => nc?.close(),
  ),
);

/** Stores a dead letter as the consumer runner does: original headers plus Orderflow-Dlq-*. */
async function deadLetter(
  payload: string,
  originalSeq: number,
  error = "InvalidEventError",
  subject: string | null = names.subject("users.registered"),
  client: JetStreamClient = js,
  dlqSubject = "dlq.order-service.users.registered",
) {
  const h = natsHeaders();
  h.set("Orderflow-Trace", `trace-${originalSeq}`);
  h.set(DlqHeaders.OriginalMsgId, `orig-${originalSeq}`);
  h.set(DlqHeaders.Stream, names.stream("USERS"));
  if (subject !== null) h.set(DlqHeaders.Subject, subject);
  h.set(DlqHeaders.Sequence, String(originalSeq));
  h.set(DlqHeaders.Consumer, dlqSubject.split(".")[1]!);
  h.set(DlqHeaders.Deliveries, "1");
  h.set(DlqHeaders.ErrorClass, error);
  h.set(DlqHeaders.ErrorMessage, "message body is not valid JSON");
  h.set(DlqHeaders.Time, "2026-01-02T03:04:05.000Z");
  const ack = await client.publish(names.subject(dlqSubject), payload, { headers: h, msgID: `dlq:test:${originalSeq}` });
  return ack.seq;
}

const dlqScript = fileURLToPath(new URL("../../dist/cli/dlq.js", import.meta.url));

const capture = () => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
};

describe("dead letters", () => {
  // Tests expect the DLQ's exact contents: what one leaves, even when it fails, must not reach the next.
  afterEach(() => jsm?.streams.purge(names.stream("DLQ")));

  it("refuses to replay a dead letter whose subject header names anything but an event stream of this namespace", async () => {
    const deps = { js, jsm, names };
    const before = (await jsm.streams.info(names.stream("USERS"))).state.messages;
    for (const subject of [`$JS.API.STREAM.PURGE.${names.stream("USERS")}`, "other_ns.users.registered", names.subject("dlq.order-service.users.registered"), names.subject("users.*")]) {
      const seq = await deadLetter(`{"planted":true}`, 900 + Math.floor(Math.random() * 1e6), "InvalidEventError", subject);
      await expect(replayDeadLetter(deps, seq)).rejects.toThrow(/which no event stream of this namespace takes; not replayed/);
      await purgeDeadLetter(deps, seq);
    }
    expect((await jsm.streams.info(names.stream("USERS"))).state.messages).toBe(before);
    // A letter whose payload was too big to copy points at the original instead of replaying nothing.
    const h = natsHeaders();
    h.set(DlqHeaders.Subject, names.subject("users.registered"));
    h.set(DlqHeaders.Stream, names.stream("USERS"));
    h.set(DlqHeaders.Sequence, "77");
    h.set(DlqHeaders.PayloadOmitted, "1048000");
    const empty = (await js.publish(names.subject("dlq.order-service.users.registered"), new Uint8Array(0), { headers: h })).seq;
    await expect(replayDeadLetter(deps, empty)).rejects.toThrow(`holds no payload (its 1048000 bytes were not copied to the DLQ; the original is in ${names.stream("USERS")} at sequence 77)`);
  });

  it("lists, shows, replays with a new Nats-Msg-Id and purges", async () => {
    const deps = { js, jsm, names };
    const a = await deadLetter(`{"id":"a","n":1}`, 11);
    const b = await deadLetter("not json at all", 12);
    const c = await deadLetter(`{"id":"c"}`, 13);

    const listed = await listDeadLetters(deps);
    expect(listed.map((d) => [d.seq, d.subject, d.consumer, d.errorClass, d.originalSeq, d.deliveries])).toEqual([
      [a, "users.registered", "order-service", "InvalidEventError", 11, 1],
      [b, "users.registered", "order-service", "InvalidEventError", 12, 1],
      [c, "users.registered", "order-service", "InvalidEventError", 13, 1],
    ]);
    const table = formatDeadLetterTable(listed).split("\n");
    expect(table[0]).toMatch(/^SEQ\s+TIME\s+CONSUMER\s+SUBJECT\s+ERROR\s+MESSAGE\s+DELIVERIES$/);
    expect(table[2]).toContain("2026-01-02T03:04:05.000Z");
    expect(formatDeadLetter(await getDeadLetter(deps, a))).toContain(`"n": 1`);
    expect(formatDeadLetter(await getDeadLetter(deps, b))).toContain("(not JSON, 15 bytes)");
    // JSON too deep to indent is shown as it came, not called "not JSON".
    const deep = "[".repeat(5000) + "]".repeat(5000);
    const shown = formatDeadLetter({ ...(await getDeadLetter(deps, a)), payload: Buffer.from(deep) });
    expect(shown).toContain(deep);
    expect(shown).not.toContain("not JSON");

    // Replaying the same payload twice: the stream stores both, because each has its own msg id.
    const before = (await jsm.streams.info(names.stream("USERS"))).state.messages;
    const r1 = await replayDeadLetter(deps, a, () => "u1");
    expect(r1).toMatchObject({ dlqSeq: a, subject: "users.registered", msgId: `replay:${a}:u1` });
    const stored = await jsm.streams.getMessage(names.stream("USERS"), { seq: r1.streamSeq });
    expect(stored!.subject).toBe(names.subject("users.registered"));
    expect(stored!.string()).toBe(`{"id":"a","n":1}`);
    expect(stored!.header.get("Nats-Msg-Id")).toBe(`replay:${a}:u1`);
    expect(stored!.header.get("Orderflow-Trace")).toBe("trace-11");
    expect([...stored!.header.keys()].filter((k) => k.toLowerCase().startsWith("orderflow-dlq-"))).toEqual([]);
    await expect(getDeadLetter(deps, a)).rejects.toThrow(/no dead letter/);

    await purgeDeadLetter(deps, b);
    expect((await listDeadLetters(deps)).map((d) => d.seq)).toEqual([c]);
    const all = await replayAllDeadLetters(deps, { uuid: () => "u2" });
    expect(all.replayed.map((r) => r.msgId)).toEqual([`replay:${c}:u2`]);
    expect(await listDeadLetters(deps)).toEqual([]);
    expect((await jsm.streams.info(names.stream("USERS"))).state.messages).toBe(before + 2);
  });

  it("purge --all and replay --all take every letter, or one consumer's, present when they start", async () => {
    const deps = { js, jsm, names };
    const run = async (argv: string[]) => {
      const { out, err, io } = capture();
      const code = await runDlqCommand(parseDlqArgs(argv), deps, io);
      return { code, out, err };
    };
    const theirs = "dlq.user-service.users.registered";
    // Letters of user-service deleted newest first around the ones left: nats-server 2.9's subject
    // index then steps over one in a purge filtered by subject (it purged one of the two).
    const gone = [];
    for (let i = 0; i < 4; i++) gone.push(await deadLetter(`{"id":"gone${i}"}`, 170 + i, undefined, undefined, js, theirs));
    for (const i of [3, 0, 1]) await purgeDeadLetter(deps, gone[i]!);
    const [o1, u1, o2, u2] = [await deadLetter(`{"id":"o1"}`, 161), await deadLetter(`{"id":"u1"}`, 162, undefined, undefined, js, theirs), await deadLetter(`{"id":"o2"}`, 163), await deadLetter(`{"id":"u2"}`, 164, undefined, undefined, js, theirs)];
    const left = async () => (await listDeadLetters(deps)).map((d) => d.seq);

    // Listed by consumer, a page at a time: the next page keeps the filter.
    const page = await run(["list", "--consumer", "user-service", "--limit", "2"]);
    expect(page.out.slice(-2)).toEqual([`2 dead letter(s) of user-service shown; 5 in ${names.stream("DLQ")}`, `more after these: dlq list --from ${u2} --limit 2 --consumer user-service`]);
    expect(page.out[0]!.split("\n").slice(1).map((row) => Number(row.split(/\s+/)[0]))).toEqual([gone[2], u1]);

    // One consumer's: the other's letters stay.
    expect(await run(["purge", "--all", "--consumer", "user-service"])).toEqual({ code: 0, out: ["purged 3 dead letter(s) of user-service"], err: [] });
    expect(await left()).toEqual([o1, o2]);
    // A name no letter has (a typo) says whose letters there are, rather than pass for an empty DLQ.
    expect(await run(["replay", "--all", "--consumer", "nobody"])).toEqual({ code: 0, out: ["0 dead letter(s) of nobody replayed"], err: ['dlq: no dead letter of "nobody"; the DLQ holds letters of order-service'] });
    expect((await run(["list", "--consumer", "nobody"])).err).toEqual(['dlq: no dead letter of "nobody"; the DLQ holds letters of order-service']);
    expect(await left()).toEqual([o1, o2]);
    const replayed = await run(["replay", "--all", "--consumer", "order-service"]);
    expect(replayed.out.at(-1)).toBe("2 dead letter(s) of order-service replayed");
    expect(await left()).toEqual([]);

    // Everything, but only what was there when it started: the purge is bounded by the last sequence it saw.
    const [, b] = [await deadLetter(`{"id":"a"}`, 165), await deadLetter(`{"id":"b"}`, 166, undefined, undefined, js, theirs)];
    const { state } = await jsm.streams.info(names.stream("DLQ"));
    expect(state.last_seq).toBe(b);
    const late = await deadLetter(`{"id":"late"}`, 167);
    expect(await purgeAllDeadLetters(deps, { lastSeq: b })).toBe(2);
    expect(await left()).toEqual([late]);
    expect(await run(["purge", "--all"])).toEqual({ code: 0, out: ["purged 1 dead letter(s)"], err: [] });
    expect(await run(["purge", "--all"])).toEqual({ code: 0, out: ["purged 0 dead letter(s)"], err: [] });
  });

  it("replay --all reports each letter as it goes, skips those with nowhere to go and stops where publishing fails", async () => {
    const env = { NATS_URL: testNatsUrl(), NATS_NAMESPACE: namespace };
    const deps = { js, jsm, names };
    const ok1 = await deadLetter(`{"id":"ok1"}`, 21);
    const lost = await deadLetter(`{"id":"lost"}`, 22, "InvalidEventError", null);
    const nowhere = await deadLetter(`{"id":"nowhere"}`, 23, "InvalidEventError", names.subject("nowhere.at.all")); // no stream takes it
    const ok2 = await deadLetter(`{"id":"ok2"}`, 24);
    const { out, err, io } = capture();
    expect(await main(["replay", "--all"], env, io)).toBe(1);
    expect(out.slice(0, 2)).toEqual([
      expect.stringMatching(new RegExp(`^replayed dead letter ${ok1} to users.registered as replay:${ok1}:`)),
      expect.stringMatching(new RegExp(`^replayed dead letter ${ok2} to users.registered as replay:${ok2}:`)),
    ]);
    expect(out[2]).toBe("2 dead letter(s) replayed, 2 skipped");
    expect(err).toEqual([
      `dlq: skipped dead letter ${lost}: no Orderflow-Dlq-Subject header; cannot tell where to replay it`,
      `dlq: skipped dead letter ${nowhere}: dead letter ${nowhere} names "${names.subject("nowhere.at.all")}" as its subject, which no event stream of this namespace takes; not replayed (purge it with dlq purge ${nowhere})`,
    ]);
    expect((await listDeadLetters(deps)).map((d) => d.seq)).toEqual([lost, nowhere]);
    await purgeDeadLetter(deps, lost);
    await purgeDeadLetter(deps, nowhere);

    // A failure that is not the letter's own (here USERS is full and refuses new messages after
    // the first) stops the run at that letter and says how many went before it.
    const first = await deadLetter(`{"id":"first"}`, 31);
    const blocked = await deadLetter(`{"id":"blocked"}`, 32);
    const users = await jsm.streams.info(names.stream("USERS"));
    await jsm.streams.update(names.stream("USERS"), { max_msgs: users.state.messages + 1, discard: DiscardPolicy.New });
    try {
      const stopped = capture();
      await expect(runDlqCommand({ verb: "replay-all" }, deps, stopped.io)).resolves.toBe(1);
      expect(stopped.out).toEqual([expect.stringMatching(new RegExp(`^replayed dead letter ${first} `))]);
      expect(stopped.err).toEqual([`dlq: replaying dead letter ${blocked} failed: maximum messages exceeded`, "dlq: 1 dead letter(s) replayed before it; it and the ones after it are still in the DLQ"]);
      const single = capture();
      expect(await main(["replay", String(blocked)], env, single.io)).toBe(1);
      expect(single.err).toEqual([`dlq: replaying dead letter ${blocked} failed: maximum messages exceeded; it is still in the DLQ`]);
    } finally {
      await jsm.streams.update(names.stream("USERS"), { max_msgs: -1, discard: DiscardPolicy.Old });
    }
    expect((await listDeadLetters(deps)).map((d) => d.seq)).toEqual([blocked]);
  });

  it("replay of a letter someone else removed meanwhile is not an error", async () => {
    const deps = { js, jsm, names };
    const a = await deadLetter(`{"id":"raced"}`, 41);
    // Another operator, on a connection of their own, purges the letter just after this replay
    // republished it and before it deletes it: the real server then answers "not found".
    const other = await connectTestNats();
    try {
      const otherJsm = await jetstreamManager(other);
      let victim = a;
      const racing = {
        ...deps,
        js: {
          publish: async (...args: Parameters<JetStreamClient["publish"]>) => {
            const ack = await js.publish(...args);
            expect(await otherJsm.streams.deleteMessage(names.stream("DLQ"), victim, false)).toBe(true);
            return ack;
          },
        } as JetStreamClient,
      };
      // Replayed, but the letter was not this run's to remove: said so, not counted as its replay.
      await expect(replayDeadLetter(racing, a, () => "r1")).resolves.toMatchObject({ dlqSeq: a, msgId: `replay:${a}:r1`, removedByOther: true });
      // Two `replay --all` at once: each letter counts once, as replayed by the run that removed it.
      victim = await deadLetter(`{"id":"raced-all"}`, 43);
      const report = await replayAllDeadLetters(racing, { uuid: () => "r3" });
      expect(report.replayed).toEqual([]);
      expect(report.skipped).toEqual([{ seq: victim, gone: true, reason: `replayed or purged by someone else meanwhile (if it was replayed, the copy published as replay:${victim}:r3 is a duplicate the inboxes skip; if it was purged, that copy is its replay)` }]);
      // `dlq replay <seq>` says the same, exit 0: the letter is gone, as asked.
      victim = await deadLetter(`{"id":"raced-one"}`, 44);
      const single = capture();
      await expect(runDlqCommand({ verb: "replay", seq: victim }, racing, single.io)).resolves.toBe(0);
      expect(single.out).toEqual([expect.stringMatching(new RegExp(`^republished dead letter ${victim} to users\\.registered \\(stream seq \\d+\\), but someone else replayed or purged it meanwhile: if it was replayed, the copy published as replay:${victim}:[-0-9a-f]+ is a duplicate the inboxes skip; if it was purged, that copy is its replay$`))]);
    } finally {
      await other.close();
    }
    expect(await listDeadLetters(deps)).toEqual([]);
  });

  it("a replay whose delete the server refuses says the letter was republished and leaves it in the DLQ", async () => {
    // An operator allowed everything but deleting messages: the republish goes through, the delete is refused.
    const server = await startOwnNatsServer({
      config: `authorization { users = [
        { user: admin, password: admin }
        { user: ops, password: ops, permissions: { publish: { deny: "$JS.API.STREAM.MSG.DELETE.>" } } }
      ] }`,
    });
    // Each clean-up registered as soon as what it closes exists (they run in reverse order).
    onTestFinished(() => server.dispose());
    const admin = await connect({ servers: server.url, user: "admin", pass: "admin" });
    onTestFinished(() => admin.close());
    const ops = await connect({ servers: server.url, user: "ops", pass: "ops" });
    onTestFinished(() => ops.close());
    const adminJsm = await jetstreamManager(admin);
    await ensureStreams(adminJsm, names, ["USERS", "DLQ"], { replicas: 1, maxAgeMs: 3600_000 });
    const b = await deadLetter(`{"id":"stuck"}`, 42, "InvalidEventError", names.subject("users.registered"), jetstream(admin));
    const refused = { js: jetstream(ops), jsm: await jetstreamManager(ops), names };
    await expect(replayDeadLetter(refused, b, () => "r2")).rejects.toThrow(
      new RegExp(`^dead letter ${b} was republished as replay:${b}:r2 but could not be deleted from the DLQ \\(.*[Pp]ermissions [Vv]iolation.*\\); replaying it again publishes one more copy`),
    );
    const adminDeps = { js: jetstream(admin), jsm: adminJsm, names };
    expect((await listDeadLetters(adminDeps)).map((d) => d.seq)).toEqual([b]);
    expect((await adminJsm.streams.info(names.stream("USERS"))).state.messages).toBe(1);
  });

  it("lists a page at a time and says where the next one starts", async () => {
    const env = { NATS_URL: testNatsUrl(), NATS_NAMESPACE: namespace };
    const deps = { js, jsm, names };
    const seqs = [await deadLetter(`{"id":"p1"}`, 51), await deadLetter(`{"id":"p2"}`, 52), await deadLetter(`{"id":"p3"}`, 53)];
    await purgeDeadLetter(deps, seqs[1]!); // a gap: the next page starts at the next letter, not the next number

    const first = capture();
    expect(await main(["list", "--limit", "1"], env, first.io)).toBe(0);
    expect(first.out[0]!.split("\n")[1]).toMatch(new RegExp(`^${seqs[0]}\\s`));
    expect(first.out.slice(1)).toEqual([`1 dead letter(s) shown; 2 in ${names.stream("DLQ")}`, `more after these: dlq list --from ${seqs[2]} --limit 1`]);
    const last = capture();
    expect(await main(["list", "--from", String(seqs[2]), "--limit", "1"], env, last.io)).toBe(0);
    expect(last.out[0]!.split("\n").slice(1)).toEqual([expect.stringMatching(new RegExp(`^${seqs[2]}\\s`))]);
    expect(last.out.slice(1)).toEqual([`1 dead letter(s) shown from seq ${seqs[2]}; 2 in ${names.stream("DLQ")}`]);
    expect((await listDeadLetters(deps, { from: seqs[0]! + 1 })).map((d) => d.seq)).toEqual([seqs[2]]);

    // replay --all takes what was there when it started: a letter dead-lettered during the run
    // (a replayed event failing again) waits for the next run instead of being walked into.
    let again: number | undefined;
    const report = await replayAllDeadLetters(deps, { onReplayed: async () => void (again ??= await deadLetter(`{"id":"again"}`, 54)) });
    await expect.poll(() => again).toBeDefined();
    expect(report.replayed.map((r) => r.dlqSeq)).toEqual([seqs[0], seqs[2]]);
    expect((await listDeadLetters(deps)).map((d) => d.seq)).toEqual([again]);
  });

  it("finds every letter however they were deleted around it (nats-server 2.9's subject index loses some after deletes)", async () => {
    const deps = { js, jsm, names };
    // Deleting the newest before the oldest leaves letters a next_by_subj lookup on 2.9.10 says
    // are not there; each pattern once left one out of list and replay --all.
    for (const [round, deleteAt] of [[2], [2, 0], [3, 0, 1]].entries()) {
      const seqs: number[] = [];
      for (let i = 0; i < 4; i++) seqs.push(await deadLetter(`{"id":"walk${i}"}`, 600 + 10 * round + i));
      for (const i of deleteAt) await purgeDeadLetter(deps, seqs[i]!);
      // And one of another consumer (another subject), as a real DLQ holds: a lookup by subject
      // on 2.9 can step over a letter to it without ever answering "none".
      seqs.push(await deadLetter(`{"id":"walk-other"}`, 600 + 10 * round + 9, "InvalidEventError", names.subject("users.registered"), js, "dlq.event-log.users.registered"));
      const left = seqs.filter((_, i) => !deleteAt.includes(i));
      expect((await listDeadLetters(deps)).map((d) => d.seq), `deleted ${deleteAt}`).toEqual(left);
      const { out, io } = capture();
      expect(await main(["list"], { NATS_URL: testNatsUrl(), NATS_NAMESPACE: namespace }, io)).toBe(0);
      expect(out.at(-1)).toBe(`${left.length} dead letter(s) shown; ${left.length} in ${names.stream("DLQ")}`);
      for (const seq of left) await purgeDeadLetter(deps, seq);
    }
  });

  it("answers a missing dead letter with exit 1 and a clear message", async () => {
    const env = { NATS_URL: testNatsUrl(), NATS_NAMESPACE: namespace };
    for (const argv of [["show", "999999"], ["replay", "999999"], ["purge", "999999"]]) {
      const { out, err, io } = capture();
      expect(await main(argv, env, io)).toBe(1);
      expect(out).toEqual([]);
      expect(err.join("\n")).toBe("dlq: no dead letter with sequence 999999");
    }
    const { err, io } = capture();
    expect(await main(["list"], { ...env, NATS_NAMESPACE: `${namespace}x` }, io)).toBe(1);
    expect(err.join("\n")).toMatch(/does not exist/);
    // The same for one letter: the stream is what is missing, not the letter.
    const one = capture();
    expect(await main(["show", "5"], { ...env, NATS_NAMESPACE: `${namespace}x` }, one.io)).toBe(1);
    expect(one.err.join("\n")).toBe(`dlq: stream ${namespace}x_DLQ does not exist (no service has started in namespace "${namespace}x")`);
  });

  /**
   * `replay --all` as a real process, through a relay that can hold its traffic: stalled once it
   * has replayed its first letter, so a signal finds it with a letter in hand and more to go.
   */
  async function replayAllHeldUp(letters: number, firstOriginalSeq: number) {
    await Promise.all(Array.from({ length: letters }, (_, i) => deadLetter(`{"id":"sig${i}"}`, firstOriginalSeq + i)));
    const relay = tcpRelay({ host: "127.0.0.1", port: Number(new URL(testNatsUrl()).port || 4222) });
    await relay.listen();
    onTestFinished(() => relay.close());
    const proc = startProcess(dlqScript, ["replay", "--all"], { NATS_URL: `nats://127.0.0.1:${relay.port}`, NATS_NAMESPACE: namespace });
    onTestFinished(() => proc.kill("SIGKILL").then(() => undefined));
    // At once, not on a poll: the run may not have finished by the time it is seen.
    proc.child.stdout!.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("replayed dead letter")) relay.stall();
    });
    await waitFor(() => proc.output.some((l) => l.startsWith("replayed dead letter")), { what: "the first letter replayed" });
    return { relay, proc };
  }

  it("replay --all stops after the letter in hand on SIGINT, prints what it replayed and exits 130", async () => {
    const deps = { js, jsm, names };
    const letters = 200;
    const usersBefore = (await jsm.streams.info(names.stream("USERS"))).state.messages;
    const { relay, proc } = await replayAllHeldUp(letters, 10_000);
    proc.child.kill("SIGINT");
    await waitFor(() => proc.output.some((l) => l.startsWith("dlq: stopping after the letter in hand")), { what: "the command to say it stops" });
    relay.resume();
    expect((await proc.exitWithin(30_000)).code, proc.output.join("\n")).toBe(130);
    const replayed = proc.output.filter((l) => l.startsWith("replayed dead letter")).length;
    expect(replayed).toBeLessThan(letters);
    expect(proc.output).toContain(`${replayed} dead letter(s) replayed`);
    expect(proc.output).toContain("dlq: interrupted; the dead letters not replayed are still in the DLQ (replay --all again to go on)");
    // The letter in hand was finished, not left republished but still in the DLQ: every letter is
    // in exactly one of the two streams.
    expect((await listDeadLetters(deps)).length).toBe(letters - replayed);
    expect((await jsm.streams.info(names.stream("USERS"))).state.messages).toBe(usersBefore + replayed);
  });

  it("replay --all exits 130 at once on a second signal, when the letter in hand does not finish", async () => {
    const { proc } = await replayAllHeldUp(50, 20_000);
    proc.child.kill("SIGINT");
    await waitFor(() => proc.output.some((l) => l.startsWith("dlq: stopping after the letter in hand")), { what: "the command to say it stops" });
    // NATS holds the letter in hand for ever: only the second signal ends it.
    proc.child.kill("SIGTERM");
    expect((await proc.exitWithin(10_000)).code).toBe(130);
  });

  it("shows a payload's and headers' control characters escaped, never raw to the terminal", async () => {
    const deps = { js, jsm, names };
    const seq = await deadLetter("\u001b[2J\u001b]0;pwned\u0007 hello\tthere", 61);
    const shown = formatDeadLetter(await getDeadLetter(deps, seq));
    expect(shown).toContain("\\x1b[2J\\x1b]0;pwned\\x07 hello\tthere");
    expect(shown).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  });
});

describe("command line", () => {
  it("as a program, exits 1 when NATS_URL names something that takes the connection but is not NATS, instead of hanging on the open socket", async () => {
    const silent = createServer(() => {}).listen(0, "127.0.0.1");
    await once(silent, "listening");
    onTestFinished(() => new Promise<void>((done) => silent.close(() => done())).then(() => undefined));
    const port = (silent.address() as AddressInfo).port;
    const proc = startProcess(dlqScript, ["list"], { NATS_URL: `127.0.0.1:${port}` });
    expect((await proc.exitWithin(30_000)).code).toBe(1);
    expect(proc.output.join("\n")).toContain(`dlq: cannot connect to NATS at 127.0.0.1:${port}`);
  });

  it("list exits 130 on a signal, with nothing to finish", async () => {
    // A server that takes the connection and never answers: list waits in its connect.
    let connected = false;
    const silent = createServer(() => void (connected = true)).listen(0, "127.0.0.1");
    await once(silent, "listening");
    onTestFinished(() => new Promise<void>((done) => silent.close(() => done())).then(() => undefined));
    const proc = startProcess(dlqScript, ["list"], { NATS_URL: `127.0.0.1:${(silent.address() as AddressInfo).port}` });
    await waitFor(() => connected, { what: "the command to connect" });
    proc.child.kill("SIGINT");
    expect(await proc.exitWithin(3_000)).toEqual({ code: 130, signal: null });
    expect(proc.output).toEqual(["dlq: interrupted"]);
  });

  it("parses every verb", () => {
    expect(parseDlqArgs(["list"])).toEqual({ verb: "list", limit: 1000 });
    expect(parseDlqArgs(["list", "--from", "5", "--limit=20"])).toEqual({ verb: "list", from: 5, limit: 20 });
    expect(parseDlqArgs(["show", "7"])).toEqual({ verb: "show", seq: 7 });
    expect(parseDlqArgs(["replay", "7"])).toEqual({ verb: "replay", seq: 7 });
    expect(parseDlqArgs(["replay", "--all"])).toEqual({ verb: "replay-all" });
    expect(parseDlqArgs(["purge", "12"])).toEqual({ verb: "purge", seq: 12 });
    expect(parseDlqArgs(["purge", "--all"])).toEqual({ verb: "purge-all" });
    expect(parseDlqArgs(["list", "--consumer", "order-service", "--from", "3"])).toEqual({ verb: "list", limit: 1000, from: 3, consumer: "order-service" });
    expect(parseDlqArgs(["purge", "--all", "--consumer", "order-service"])).toEqual({ verb: "purge-all", consumer: "order-service" });
    expect(parseDlqArgs(["replay", "--consumer=event-log-users", "--all"])).toEqual({ verb: "replay-all", consumer: "event-log-users" });
  });

  it.each([[[]], [["drop", "1"]], [["show"]], [["show", "abc"]], [["show", "0"]], [["show", "-1"]], [["show", "9007199254740993"]], [["replay", "1.5"]], [["purge", "1", "2"]], [["list", "x"]], [["list", "--limit", "0"]], [["list", "--limit", "100001"]], [["list", "--limit", "1e3"]], [["list", "--from"]], [["list", "--from", "0"]], [["list", "--all"]], [["purge", "--all", "3"]], [["purge", "--consumer", "a"]], [["purge", "--all", "--all"]], [["purge", "--all", "--consumer"]], [["purge", "--all", "--consumer", "a.b"]], [["replay", "--all", "--consumer", "*"]], [["replay", "--all", "--consumer", "a", "--consumer", "b"]], [["purge", "--everything"]], [["list", "--consumer", "a b"]], [["list", "--consumer", "x", "--consumer", "x"]], [["purge", "--all", "--consumer=-x"]], [["purge", "--all", "--consumer="]]])(
    "rejects %j with exit 2 and the usage",
    async (argv) => {
      expect(() => parseDlqArgs(argv)).toThrow(UsageError);
      const { out, err, io } = capture();
      expect(await main(argv, { NATS_URL: "nats://127.0.0.1:1" }, io)).toBe(2);
      expect(out).toEqual([]);
      expect(err[0]).toMatch(/^dlq: .+\nusage: dlq/);
    },
  );

  it("says what a sequence number may be when one is out of range", () => {
    expect(() => parseDlqArgs(["show", "9007199254740993"])).toThrow('"9007199254740993" is not a sequence number (a whole number from 1 to 999999999999999)');
  });

  it("authenticates with NATS_USER/NATS_PASSWORD and NATS_TOKEN", async () => {
    for (const [args, good, bad] of [
      [["--user", "dlq", "--pass", "s3cret"], { NATS_USER: "dlq", NATS_PASSWORD: "s3cret" }, { NATS_USER: "dlq", NATS_PASSWORD: "wrong" }],
      [["--auth", "t0ken"], { NATS_TOKEN: "t0ken" }, {}],
    ] as const) {
      const server = await startOwnNatsServer({ extraArgs: [...args] });
      try {
        const env = { NATS_URL: server.url, NATS_NAMESPACE: "authtest" };
        // Authenticated: it gets as far as the (missing) DLQ stream.
        const ok = capture();
        expect(await main(["list"], { ...env, ...good }, ok.io)).toBe(1);
        expect(ok.err.join("\n")).toMatch(/authtest_DLQ does not exist/);
        const denied = capture();
        expect(await main(["list"], { ...env, ...bad }, denied.io)).toBe(1);
        expect(denied.err.join("\n")).toMatch(/cannot connect to NATS/);
      } finally {
        await server.dispose();
      }
    }
  });

  it("authenticates with a credentials file (NATS_CREDS_FILE) against a server in operator mode", async () => {
    const { config, creds, otherCreds } = operatorMode();
    const dir = mkdtempSync(join(tmpdir(), "of-creds-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true })); // also when the server does not start
    const server = await startOwnNatsServer({ config });
    try {
      writeFileSync(join(dir, "user.creds"), creds);
      writeFileSync(join(dir, "other.creds"), otherCreds);
      const env = { NATS_URL: server.url, NATS_NAMESPACE: "credstest" };
      const ok = capture();
      // Authenticated, and JetStream answers: about the (missing) DLQ stream.
      expect(await main(["list"], { ...env, NATS_CREDS_FILE: join(dir, "user.creds") }, ok.io)).toBe(1);
      expect(ok.err.join("\n")).toMatch(/credstest_DLQ does not exist/);
      const denied = capture();
      expect(await main(["list"], { ...env, NATS_CREDS_FILE: join(dir, "other.creds") }, denied.io)).toBe(1);
      expect(denied.err.join("\n")).toMatch(/cannot connect to NATS/);
      const missing = capture();
      expect(await main(["list"], { ...env, NATS_CREDS_FILE: join(dir, "nope.creds") }, missing.io)).toBe(2);
      expect(missing.err.join("\n")).toMatch(/NATS_CREDS_FILE must be a readable credentials file/);
    } finally {
      await server.dispose();
    }
  });

  it("connects over TLS with a private CA and a client certificate (NATS_TLS_*), to a server that verifies clients", async () => {
    const pki = createTestPki();
    onTestFinished(() => pki.dispose()); // also when the server does not start
    const server = await startOwnNatsServer({
      config: natsServerTls(pki, { verifyClients: true }),
    });
    try {
      const env = { NATS_URL: `tls://127.0.0.1:${server.port}`, NATS_NAMESPACE: "tlstest", NATS_TLS_CA_FILE: pki.caFile };
      const ok = capture();
      // Through the handshake, and JetStream answers: about the (missing) DLQ stream.
      expect(await main(["list"], { ...env, NATS_TLS_CERT_FILE: pki.client.certFile, NATS_TLS_KEY_FILE: pki.client.keyFile }, ok.io)).toBe(1);
      expect(ok.err.join("\n")).toMatch(/tlstest_DLQ does not exist/);
      const denied = capture();
      expect(await main(["list"], env, denied.io)).toBe(1);
      // What ended the handshake, not only nats.js's "timeout": the server's alert, or (TLS 1.3
      // refuses the certificate after the client's first bytes) the reset that follows it.
      expect(denied.err.join("\n")).toMatch(/cannot connect to NATS at tls:\/\/127\.0\.0\.1:\d+: timeout \((.*certificate.*|read ECONNRESET)\)/);
      const half = capture();
      expect(await main(["list"], { ...env, NATS_TLS_CERT_FILE: pki.client.certFile }, half.io)).toBe(2);
      expect(half.err.join("\n")).toMatch(/NATS_TLS_KEY_FILE is required with NATS_TLS_CERT_FILE/);
    } finally {
      await server.dispose();
    }
  });

  it("asks for its replies under NATS_INBOX_PREFIX, for an account that allows its users only their own", async () => {
    const server = await startOwnNatsServer({ config: `authorization { users = [ { user: dlq, password: dlq, permissions: { publish: ">", subscribe: { allow: "ops_r.>" } } } ] }` });
    try {
      const ok = capture();
      // It gets an answer from JetStream: about the (missing) DLQ stream.
      expect(await main(["list"], { NATS_URL: server.url, NATS_NAMESPACE: "authtest", NATS_USER: "dlq", NATS_PASSWORD: "dlq", NATS_INBOX_PREFIX: "ops_r" }, ok.io)).toBe(1);
      expect(ok.err.join("\n")).toMatch(/authtest_DLQ does not exist/);
    } finally {
      await server.dispose();
    }
  });

  it("fails with exit 1 when NATS is unreachable, without printing the URL's password", async () => {
    const { err, io } = capture();
    expect(await main(["list"], { NATS_URL: "nats://admin:s3cr3t@127.0.0.1:1" }, io)).toBe(1);
    expect(err[0]).toMatch(/cannot connect to NATS at nats:\/\/admin:\*\*\*@127.0.0.1:1/);
    expect(err.join("\n")).not.toContain("s3cr3t");
  });

  it("prints the usage for help, with exit 0", async () => {
    for (const argv of [["help"], ["--help"], ["-h"]]) {
      const { out, io } = capture();
      expect(await main(argv, {}, io)).toBe(0);
      expect(out[0]).toMatch(/^usage: dlq/);
    }
  });

  it.each([[["list", "--help"]], [["list", "-h"]], [["list", "--from", "5", "--help"]], [["show", "--help"]], [["show", "7", "-h"]], [["replay", "--help"]], [["replay", "--all", "-h"]], [["purge", "-h"]]])(
    "prints the usage on stdout for %j, with exit 0 and without connecting",
    async (argv) => {
      const { out, err, io } = capture();
      expect(await main(argv, { NATS_URL: "nats://127.0.0.1:1" }, io)).toBe(0);
      expect(out).toHaveLength(1);
      expect(out[0]).toMatch(/^usage: dlq/);
      expect(err).toEqual([]);
    },
  );

  it.each([
    [["list", "--from", "5", "--from", "9"], "--from given 2 times; give it once"],
    [["list", "--limit", "10", "--limit=20"], "--limit given 2 times; give it once"],
  ])("refuses the repeated flag in %j with exit 2 instead of taking the last", async (argv, sentence) => {
    const { out, err, io } = capture();
    expect(await main(argv, { NATS_URL: "nats://127.0.0.1:1" }, io)).toBe(2);
    expect(out).toEqual([]);
    expect(err[0]).toMatch(new RegExp(`^dlq: ${sentence}\n${"usage: dlq"}`));
  });
});
