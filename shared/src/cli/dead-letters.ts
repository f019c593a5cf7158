import { randomUUID } from "node:crypto";
import type { JetStreamClient, JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/nats-core";
import { DlqHeaders } from "../consumer/dead-letter.js";
import type { Names } from "../nats/names.js";
import { streamCatalog } from "../events/catalog.js";
import { storedAck } from "../nats/acked-publisher.js";
import { isNotFound } from "../nats/streams.js";

/** One message of the DLQ stream, with the reason it was given up on read back from its headers. */
export interface DeadLetter {
  /** Sequence in the DLQ stream: what `show`, `replay` and `purge` take. */
  seq: number;
  /** Its subject in the DLQ: `<namespace>.dlq.<consumer>.<original subject>`. */
  dlqSubject: string;
  /** When it was dead-lettered (the Orderflow-Dlq-Time header, else the DLQ store time). */
  time: string;
  consumer: string;
  /** Original subject, namespace removed (e.g. users.registered). */
  subject: string;
  /** Original concrete subject, as the stream stored it; replay publishes here. */
  originalSubject: string;
  originalStream: string;
  originalSeq: number | undefined;
  deliveries: number | undefined;
  errorClass: string;
  errorMessage: string;
  /** Every header of the dead letter, as stored. */
  headers: [string, string][];
  payload: Uint8Array;
}

export interface DlqDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: Names;
}

/** A dead letter that does not exist (never did, purged, or already replayed). */
export class DeadLetterNotFoundError extends Error {
  override name = "DeadLetterNotFoundError";
  constructor(readonly seq: number) {
    super(`no dead letter with sequence ${seq}`);
  }
}

const isDlqHeader = (key: string) => key.toLowerCase().startsWith("orderflow-dlq-");

function headerPairs(h: MsgHdrs | undefined): [string, string][] {
  const out: [string, string][] = [];
  if (!h) return out;
  for (const [key, values] of h) for (const v of values) out.push([key, v]);
  return out;
}

function toDeadLetter(m: StoredMsg, names: Names): DeadLetter {
  // A planted message with a header nats.js cannot decode must not make the whole DLQ unlistable.
  let header: MsgHdrs | undefined;
  try {
    header = m.header;
  } catch {
    header = undefined;
  }
  const get = (k: string) => header?.get(k) || "";
  const num = (k: string) => (get(k) && Number.isFinite(Number(get(k))) ? Number(get(k)) : undefined);
  const originalSubject = get(DlqHeaders.Subject);
  return {
    seq: m.seq,
    dlqSubject: m.subject,
    time: get(DlqHeaders.Time) || m.time.toISOString(),
    consumer: get(DlqHeaders.Consumer),
    subject: originalSubject ? names.logicalSubject(originalSubject) : "",
    originalSubject,
    originalStream: get(DlqHeaders.Stream),
    originalSeq: num(DlqHeaders.Sequence),
    deliveries: num(DlqHeaders.Deliveries),
    errorClass: get(DlqHeaders.ErrorClass),
    errorMessage: get(DlqHeaders.ErrorMessage),
    headers: headerPairs(header),
    payload: m.data,
  };
}

/**
 * The dead letters of the namespace from sequence `from` on, oldest first, read one at a time so
 * a DLQ of any size never sits in memory. Walks the stream with `next_by_subj` lookups, so it
 * creates no consumer and skips purged sequences without probing each one. It stops at the last
 * sequence the stream had when it started: a letter dead-lettered meanwhile (a replay that fails
 * again) is not walked into.
 */
export async function* deadLetters({ jsm, names }: DlqDeps, { from = 1 }: { from?: number } = {}): AsyncGenerator<DeadLetter> {
  const stream = names.stream("DLQ");
  const { state } = await jsm.streams.info(stream);
  let seq = Math.max(from, state.first_seq);
  while (state.messages > 0 && seq <= state.last_seq) {
    // ">", not the stream's own "<ns>.dlq.>" (it holds nothing else): nats-server 2.9 answers a
    // narrower filter from a per-subject index that, after deletes out of order, steps over
    // letters still there, or says there are none. STREAM.MSG.GET has answered next_by_subj
    // since 2.9; the typed MsgRequest omits it.
    const query = { seq, next_by_subj: ">" } as unknown as { seq: number };
    const m = await jsm.streams.getMessage(stream, query);
    if (!m || m.seq > state.last_seq) return;
    yield toDeadLetter(m, names);
    seq = m.seq + 1;
  }
}

/** Whether a letter is one `consumer` gave up on (by its DLQ subject, `dlq.<consumer>.…`); any letter without one. */
function ofConsumer(names: Names, consumer: string | undefined): (dl: DeadLetter) => boolean {
  if (consumer === undefined) return () => true;
  const prefix = `${names.subject(`dlq.${consumer}`)}.`;
  return (dl) => dl.dlqSubject.startsWith(prefix);
}

/** The consumers (as `--consumer` names them: the token of the letters' subject) that have letters in the DLQ. */
export async function deadLetterConsumers(deps: DlqDeps): Promise<string[]> {
  const prefix = `${deps.names.subject("dlq")}.`;
  const seen = new Set<string>();
  for await (const dl of deadLetters(deps)) {
    if (dl.dlqSubject.startsWith(prefix)) seen.add(dl.dlqSubject.slice(prefix.length).split(".")[0]!);
  }
  return [...seen].sort();
}

/** Every dead letter of the namespace (from `from`, at most `limit`), oldest first. */
export async function listDeadLetters(deps: DlqDeps, { limit = Infinity, from }: { limit?: number; from?: number } = {}): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  if (limit < 1) return out;
  for await (const dl of deadLetters(deps, { from })) {
    out.push(dl);
    if (out.length >= limit) break;
  }
  return out;
}

export interface DeadLetterPage {
  letters: DeadLetter[];
  /** Messages in the DLQ stream when the page was read. */
  total: number;
  /** The sequence to ask for next (`--from`), when there are letters after this page. */
  next?: number;
}

/** At most `limit` dead letters (of `consumer`) from `from` on, and where the next page starts. */
export async function pageDeadLetters(deps: DlqDeps, { limit, from, consumer }: { limit: number; from?: number; consumer?: string }): Promise<DeadLetterPage> {
  const { state } = await deps.jsm.streams.info(deps.names.stream("DLQ"));
  const letters: DeadLetter[] = [];
  let next: number | undefined;
  const mine = ofConsumer(deps.names, consumer);
  for await (const dl of deadLetters(deps, { from })) {
    if (!mine(dl)) continue;
    // One letter past the page tells whether there is a next page, and where it starts.
    if (letters.length === limit) {
      next = dl.seq;
      break;
    }
    letters.push(dl);
  }
  return { letters, total: state.messages, ...(next === undefined ? {} : { next }) };
}

/** One dead letter by its DLQ sequence; throws DeadLetterNotFoundError when there is none. */
export async function getDeadLetter({ jsm, names }: DlqDeps, seq: number): Promise<DeadLetter> {
  const m = await jsm.streams.getMessage(names.stream("DLQ"), { seq }).catch((err: unknown) => {
    // A missing stream (a NATS_NAMESPACE typo) is not a missing letter: say which it is.
    if (/stream not found/i.test(String((err as Error)?.message))) throw err;
    if (isNotFound(err)) return null;
    throw err;
  });
  if (!m) throw new DeadLetterNotFoundError(seq);
  return toDeadLetter(m, names);
}

export interface ReplayResult {
  dlqSeq: number;
  subject: string;
  /** The Nats-Msg-Id the replay was published with (never the original one). */
  msgId: string;
  /** Sequence of the republished message in the original stream. */
  streamSeq: number;
  /**
   * The letter was gone when this replay came to delete it: another run replayed it (or someone
   * purged it) meanwhile. The copy published here is a duplicate the inboxes skip if it was
   * replayed, and its replay if it was purged (see removedByOtherNote).
   */
  removedByOther?: true;
}

/** What the copy a replay published means when someone else removed the letter meanwhile. */
export const removedByOtherNote = (r: ReplayResult) =>
  `if it was replayed, the copy published as ${r.msgId} is a duplicate the inboxes skip; if it was purged, that copy is its replay`;

/**
 * Republishes a dead letter's original payload and headers to its original subject, then
 * deletes it from the DLQ. The payload is untouched, so the CloudEvent id (and the inbox's
 * dedupe) is the same; the Nats-Msg-Id is new (`replay:<dlqseq>:<uuid>`) so the stream's
 * duplicate window cannot swallow the replay. Every consumer of that subject receives it again:
 * those that applied it already see a duplicate in their inbox and change nothing.
 * A crash between publish and delete leaves the dead letter in place; replaying it again
 * publishes one more copy, which the inbox also dedupes.
 */
export async function replayDeadLetter(deps: DlqDeps, seq: number, uuid: () => string = randomUUID): Promise<ReplayResult> {
  const dl = await getDeadLetter(deps, seq);
  if (!dl.originalSubject) throw new Error(`dead letter ${seq} has no ${DlqHeaders.Subject} header; cannot tell where to replay it`);
  // The subject comes from a header anyone who can publish to the DLQ could have written: only a
  // subject of this namespace's event streams is published to, never e.g. $JS.API.STREAM.PURGE.…
  const omitted = dl.headers.find(([k]) => k.toLowerCase() === DlqHeaders.PayloadOmitted.toLowerCase());
  if (omitted) {
    throw new NoStreamForSubjectError(seq, dl.originalSubject, `dead letter ${seq} holds no payload (its ${omitted[1]} bytes were not copied to the DLQ; the original is in ${dl.originalStream} at sequence ${dl.originalSeq}); republish that one instead`);
  }
  if (!isReplayableSubject(deps.names, dl.originalSubject)) {
    throw new NoStreamForSubjectError(seq, dl.originalSubject, `dead letter ${seq} names ${JSON.stringify(dl.originalSubject)} as its subject, which no event stream of this namespace takes; not replayed (purge it with dlq purge ${seq})`);
  }
  const h = natsHeaders();
  for (const [key, value] of dl.headers) {
    if (isDlqHeader(key) || key.toLowerCase() === "nats-msg-id") continue;
    h.append(key, value);
  }
  const msgId = `replay:${seq}:${uuid()}`;
  let ack;
  try {
    ack = storedAck(await deps.js.publish(dl.originalSubject, dl.payload, { headers: h, msgID: msgId }));
  } catch (err) {
    // The server answers "no responders" at once when no stream takes the subject.
    if ((err as Error)?.name === "JetStreamNotEnabled") throw new NoStreamForSubjectError(seq, dl.originalSubject);
    throw new ReplayPublishError(seq, err);
  }
  try {
    await deps.jsm.streams.deleteMessage(deps.names.stream("DLQ"), seq, false);
  } catch (err) {
    // Someone else replayed or purged it meanwhile: it is gone, as this replay wanted, and the
    // copy just published is a duplicate the inboxes skip (replayed) or its replay (purged).
    if (isNotFound(err)) return { dlqSeq: seq, subject: dl.subject, msgId, streamSeq: ack.seq, removedByOther: true };
    throw new Error(
      `dead letter ${seq} was republished as ${msgId} but could not be deleted from the DLQ (${(err as Error)?.message ?? String(err)}); replaying it again publishes one more copy, which consumers' inboxes skip`,
    );
  }
  return { dlqSeq: seq, subject: dl.subject, msgId, streamSeq: ack.seq };
}


/** A literal subject (no wildcards) of the namespace that one of the catalog's event streams, not the DLQ, takes. */
function isReplayableSubject(names: Names, subject: string): boolean {
  if (names.subject(names.logicalSubject(subject)) !== subject) return false; // another namespace
  const logical = names.logicalSubject(subject);
  const tokens = logical.split(".");
  if (tokens.some((t) => t === "" || t === "*" || t === ">" || /[\s]/.test(t))) return false;
  return Object.entries(streamCatalog).some(
    ([stream, s]) => stream !== "DLQ" && s.subjects.some((p) => (p.endsWith(".>") ? logical.startsWith(p.slice(0, -1)) && tokens.length > p.split(".").length - 1 : p === logical)),
  );
}

/** Republishing the letter failed (its own words in `message`): it is still in the DLQ, untouched. */
export class ReplayPublishError extends Error {
  override name = "ReplayPublishError";
  constructor(
    readonly seq: number,
    override readonly cause: unknown,
  ) {
    super((cause as Error)?.message ?? String(cause));
  }
  /** A timeout leaves open whether the copy was stored after all. */
  get timedOut(): boolean {
    return /timeout|timed out/i.test(this.message);
  }
}

/** No stream in the namespace stores the dead letter's original subject (any more). */
export class NoStreamForSubjectError extends Error {
  override name = "NoStreamForSubjectError";
  constructor(
    readonly seq: number,
    readonly subject: string,
    message = `no stream stores ${subject}, so dead letter ${seq} has nowhere to go (or JetStream is not available)`,
  ) {
    super(message);
  }
}

export interface ReplayAllReport {
  replayed: ReplayResult[];
  /** Letters left alone: gone since the listing (replayed or purged by someone else), or with nowhere to replay to. */
  skipped: { seq: number; reason: string; gone: boolean }[];
  /** Stopped when asked (its signal), after the letter in hand: the ones after it are still in the DLQ. */
  interrupted?: true;
}

/** `replay --all` stopped at a letter it could not publish or delete; `report` holds what it did before. */
export class ReplayAllError extends Error {
  override name = "ReplayAllError";
  constructor(
    readonly seq: number,
    readonly report: ReplayAllReport,
    override readonly cause: unknown,
  ) {
    super(`replaying dead letter ${seq} failed: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

/**
 * Replays every dead letter present when it starts, oldest first, reporting each as it goes.
 * A letter that cannot be replayed for a reason of its own (no original subject, no stream for
 * it) is skipped; any other failure to publish or delete stops the run (NATS is likely
 * unavailable), leaving that letter and the rest in place. `signal` stops it between letters
 * (Ctrl-C): a letter is never left half replayed by it.
 */
export async function replayAllDeadLetters(
  deps: DlqDeps,
  {
    uuid = randomUUID,
    onReplayed,
    onSkipped,
    signal,
    consumer,
  }: {
    uuid?: () => string;
    onReplayed?: (r: ReplayResult) => void;
    onSkipped?: (s: ReplayAllReport["skipped"][number]) => void;
    signal?: AbortSignal;
    /** Only the letters this consumer gave up on (the name in their subject, as `purge --all` takes it). */
    consumer?: string;
  } = {},
): Promise<ReplayAllReport> {
  const mine = ofConsumer(deps.names, consumer);
  const report: ReplayAllReport = { replayed: [], skipped: [] };
  const skip = (s: ReplayAllReport["skipped"][number]) => {
    report.skipped.push(s);
    onSkipped?.(s);
  };
  for await (const dl of deadLetters(deps)) {
    if (signal?.aborted) {
      report.interrupted = true;
      break;
    }
    if (!mine(dl)) continue;
    if (!dl.originalSubject) {
      skip({ seq: dl.seq, reason: `no ${DlqHeaders.Subject} header; cannot tell where to replay it`, gone: false });
      continue;
    }
    try {
      const r = await replayDeadLetter(deps, dl.seq, uuid);
      // Two runs at once (two operators, a retried job) both publish a letter; only one deletes
      // it and counts it as replayed, so their totals add up to the letters there were.
      if (r.removedByOther) skip({ seq: dl.seq, reason: `replayed or purged by someone else meanwhile (${removedByOtherNote(r)})`, gone: true });
      else {
        report.replayed.push(r);
        onReplayed?.(r);
      }
    } catch (err) {
      if (err instanceof DeadLetterNotFoundError) skip({ seq: dl.seq, reason: "gone since the listing (replayed or purged by someone else)", gone: true });
      else if (err instanceof NoStreamForSubjectError) skip({ seq: dl.seq, reason: err.message, gone: false });
      else throw new ReplayAllError(dl.seq, report, err);
    }
  }
  return report;
}

/**
 * Deletes every dead letter stored before it starts (of one consumer only, with `consumer`); a
 * letter stored meanwhile is kept, since nobody has seen it. Returns how many were deleted.
 * All of them: one purge request up to the last sequence. One consumer's: letter by letter, by
 * the same walk as `list`, since nats-server 2.9 answers a purge filtered by subject from the
 * subject index that, after deletes out of order, steps over letters (it left one of two).
 */
export async function purgeAllDeadLetters(
  deps: DlqDeps,
  { consumer, lastSeq }: { consumer?: string; /** The last sequence to purge; by default the DLQ's last when it starts. */ lastSeq?: number } = {},
): Promise<number> {
  const { jsm, names } = deps;
  const stream = names.stream("DLQ");
  const last = lastSeq ?? (await jsm.streams.info(stream)).state.last_seq;
  if (consumer === undefined) return last === 0 ? 0 : (await jsm.streams.purge(stream, { seq: last + 1 })).purged;
  const mine = ofConsumer(names, consumer);
  let purged = 0;
  for await (const dl of deadLetters(deps)) {
    if (dl.seq > last) break;
    if (!mine(dl)) continue;
    // Gone meanwhile (replayed or purged by someone else) is as good as deleted here, but not counted.
    if (await jsm.streams.deleteMessage(stream, dl.seq, false).catch((err: unknown) => (isNotFound(err) ? false : Promise.reject(err)))) purged++;
  }
  return purged;
}

/** Deletes one dead letter for good; throws DeadLetterNotFoundError when there is none. */
export async function purgeDeadLetter({ jsm, names }: DlqDeps, seq: number): Promise<void> {
  await getDeadLetter({ jsm, names } as DlqDeps, seq);
  await jsm.streams.deleteMessage(names.stream("DLQ"), seq, false);
}

const oneLine = (s: string, max: number) => {
  const flat = printable(s.replace(/\s+/g, " "));
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/** A plain-text table for `dlq list`, one dead letter per row. */
export function formatDeadLetterTable(letters: readonly DeadLetter[]): string {
  const head = ["SEQ", "TIME", "CONSUMER", "SUBJECT", "ERROR", "MESSAGE", "DELIVERIES"];
  const rows = letters.map((d) => [
    String(d.seq),
    d.time,
    d.consumer,
    d.subject,
    d.errorClass,
    oneLine(d.errorMessage, 80),
    d.deliveries === undefined ? "" : String(d.deliveries),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return printable([line(head), ...rows.map(line)].join("\n"));
}

/**
 * Control characters shown as \xNN: a payload or header is anyone's bytes, and escape sequences
 * written raw would drive the operator's terminal (clear it, retitle it, hide text).
 */
// eslint-disable-next-line no-control-regex
const printable = (text: string) => text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);

/** Headers, then the payload: pretty JSON when it parses, the raw text otherwise. */
export function formatDeadLetter(d: DeadLetter): string {
  const text = Buffer.from(d.payload).toString("utf8");
  let body: string;
  try {
    const json = JSON.parse(text) as unknown;
    try {
      body = JSON.stringify(json, null, 2);
    } catch {
      body = text; // JSON nested too deep to indent (stringify recurses), shown as it came
    }
  } catch {
    body = `(not JSON, ${d.payload.length} bytes)\n${text}`;
  }
  const width = Math.max(...d.headers.map(([k]) => k.length), 0);
  return printable([`dead letter ${d.seq}`, "headers:", ...d.headers.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`), "payload:", body].join("\n"));
}
