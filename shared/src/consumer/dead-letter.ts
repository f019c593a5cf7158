import { randomUUID } from "node:crypto";
import { JetStreamApiError, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { Names } from "../nats/names.js";
import { storedAck } from "../nats/acked-publisher.js";
import { hasUnreadableHeaders, readHeaders } from "../nats/headers.js";
import { isNotFound } from "../nats/streams.js";

/** Headers added to every dead letter; the `dlq` command reads them back. */
export const DlqHeaders = {
  Stream: "Orderflow-Dlq-Stream",
  Subject: "Orderflow-Dlq-Subject",
  Sequence: "Orderflow-Dlq-Sequence",
  Consumer: "Orderflow-Dlq-Consumer",
  Deliveries: "Orderflow-Dlq-Deliveries",
  /**
   * Prefix of the original's JetStream headers (`Nats-Expected-Stream`, `Nats-Rollup`, …), kept
   * under `Orderflow-Dlq-Original-<name>`: copied as they are, they would be directives to the DLQ,
   * which refuses them (an expected stream that is not the DLQ) every time, for ever.
   */
  OriginalPrefix: "Orderflow-Dlq-Original-",
  /** Something about the copy itself, e.g. that the original's headers could not be copied. */
  Note: "Orderflow-Dlq-Note",
  /** The payload's size in bytes, when it was too big to copy (it is in the original stream). */
  PayloadOmitted: "Orderflow-Dlq-Payload-Omitted",
  ErrorClass: "Orderflow-Dlq-Error-Class",
  ErrorMessage: "Orderflow-Dlq-Error-Message",
  Time: "Orderflow-Dlq-Time",
  OriginalMsgId: "Orderflow-Dlq-Original-Msg-Id",
} as const;

export interface DeadLetterInfo {
  consumer: string;
  error: Error;
  now?: Date;
}

/**
 * Copies a message into the DLQ stream with its payload, its headers and the reason it was
 * given up on. The Nats-Msg-Id names the original stream position, so dead-lettering the same
 * delivery twice (a crash between publish and term) stores one dead letter.
 */
export async function publishDeadLetter(js: JetStreamClient, names: Names, msg: JsMsg, info: DeadLetterInfo): Promise<void> {
  const own = letterHeaders(msg, info);
  const full = natsHeaders();
  const original = readHeaders(msg);
  if (original) {
    for (const [key, values] of original) {
      const lower = key.toLowerCase();
      if (lower === "nats-msg-id") continue; // kept as OriginalMsgId
      for (const v of values) full.append(lower.startsWith("nats-") ? `${DlqHeaders.OriginalPrefix}${key}` : key, v);
    }
  } else if (hasUnreadableHeaders(msg)) {
    full.set(DlqHeaders.Note, "the original headers could not be decoded and are not copied");
  }
  for (const [key, values] of own) for (const v of values) full.set(key, v);
  const logical = names.logicalSubject(msg.subject);
  const subject = names.subject(`dlq.${info.consumer}.${logical}`);
  // Per consumer: two consumers of one stream may each give up on the same message. The stored
  // time (the same on every redelivery) tells this message from another stored at the same
  // position of a stream deleted and created again within the DLQ's duplicate window, whose
  // letter would otherwise be taken for this one's and dropped.
  const msgID = `dlq:${info.consumer}:${msg.info.stream}:${msg.seq}:${msg.timestampNanos}`;
  let data = msg.data;
  let h = full;
  let ack;
  // A letter the DLQ refuses for good would be nak'ed and come back for ever, holding a place in
  // max_ack_pending. So each refusal gives up one thing more, three letters at most: the whole
  // copy; its headers without the payload (which stays in the original stream, at the position
  // the headers give: a message near the server's max_payload, or over the DLQ's max_msg_size);
  // the DLQ's own headers alone, enough to find the original and to know why it was given up on.
  for (;;) {
    try {
      ack = storedAck(await js.publish(subject, data, { headers: h, msgID }));
      break;
    } catch (err) {
      if (!isRefusal(err) || h === own) throw err;
      if (data.length > 0) {
        h.set(DlqHeaders.PayloadOmitted, String(msg.data.length));
        data = EMPTY;
      } else {
        h = own;
        h.set(DlqHeaders.Note, `the DLQ refused the letter with the original's headers (${oneLine((err as Error).message, 200)}); they are not copied`);
        h.set(DlqHeaders.PayloadOmitted, String(msg.data.length));
      }
    }
  }
  // A duplicate is normally this letter stored by an earlier attempt (a crash before the term).
  // The id is predictable, though: if what the DLQ holds under it is not this message's letter,
  // someone took the id first, and the letter is stored under one of its own.
  if (ack.duplicate && !(await holdsLetterOf(js, ack.stream, ack.seq, msg, info.consumer))) {
    storedAck(await js.publish(subject, data, { headers: h, msgID: `${msgID}:${randomUUID()}` }));
  }
}

const EMPTY = new Uint8Array(0);

/** The DLQ's own headers: where the original is, who gave up on it, and why. */
function letterHeaders(msg: JsMsg, info: DeadLetterInfo) {
  const h = natsHeaders();
  const originalId = readHeaders(msg)?.get("Nats-Msg-Id");
  if (originalId) h.set(DlqHeaders.OriginalMsgId, originalId);
  h.set(DlqHeaders.Stream, msg.info.stream);
  h.set(DlqHeaders.Subject, msg.subject);
  h.set(DlqHeaders.Sequence, String(msg.seq));
  h.set(DlqHeaders.Consumer, info.consumer);
  h.set(DlqHeaders.Deliveries, String(msg.info.deliveryCount));
  h.set(DlqHeaders.ErrorClass, info.error.name);
  h.set(DlqHeaders.ErrorMessage, oneLine(info.error.message, 1024));
  h.set(DlqHeaders.Time, (info.now ?? new Date()).toISOString());
  return h;
}

/** Header values cannot hold line breaks; keep them readable and bounded. */
function oneLine(text: string, max: number): string {
  return text.replace(/[\r\n]+/g, " ").slice(0, max);
}

/**
 * The letter itself is refused, and would be again: over the server's max_payload (nats.js says
 * so before sending), or a 400 from JetStream (over the DLQ's max_msg_size, an expectation not
 * met). Not an outage, a timeout or a missing stream, and not the account's storage quota
 * (10002, also a 400), which frees up: those are retried with the whole letter.
 */
function isRefusal(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.status === 400 && err.code !== 10002;
  return /max_payload/i.test(String((err as Error)?.message));
}

async function holdsLetterOf(js: JetStreamClient, stream: string, seq: number, msg: JsMsg, consumer: string): Promise<boolean> {
  let stored;
  try {
    stored = await (await js.jetstreamManager()).streams.getMessage(stream, { seq });
  } catch (err) {
    if (isNotFound(err)) return false; // replayed or purged since: the letter is not there
    throw err;
  }
  let h;
  try {
    h = stored?.header;
  } catch {
    return false; // headers no letter of ours has
  }
  return !!h && h.get(DlqHeaders.Stream) === msg.info.stream && h.get(DlqHeaders.Sequence) === String(msg.seq) && h.get(DlqHeaders.Consumer) === consumer;
}
