import {
  createInbox,
  headers as natsHeaders,
  PermissionViolationError,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Payload,
  type Status,
  type Subscription,
} from "@nats-io/nats-core";
import type { PubAck } from "@nats-io/jetstream";

/** The JetStream publish the outbox relay needs; a `JetStreamClient` is one too. */
export interface AckedPublisher {
  publish(subject: string, payload: Payload, opts: { msgID: string; headers?: MsgHdrs }): Promise<PubAck>;
}

/** JetStream answered the publish with an error (or nothing listens on the subject). */
export class PublishRejectedError extends Error {
  override name = "PublishRejectedError";
  constructor(
    message: string,
    readonly code: number,
    readonly errCode?: number,
    /** The server's "no responders": no stream takes the subject (a lost or deleted stream, say). */
    readonly noStream = false,
  ) {
    super(message);
  }
}

export class PublishTimeoutError extends Error {
  override name = "PublishTimeoutError";
}

/**
 * The ack, if it says the stream holds the message; otherwise throws. A clustered stream on a
 * server before 2.11 answers a copy of a message whose first publish is still being proposed
 * with `{ duplicate: true, seq: 0 }` and no error, and that proposal can still be lost (a leader
 * election): sequence 0 means "not stored", so whoever deletes its own copy on an ack (the relay,
 * the DLQ) must keep it and try again later. Streams here use limits retention, so a stored
 * message always has a sequence above 0.
 */
export function storedAck(ack: PubAck): PubAck {
  if (ack.seq > 0) return ack;
  throw new PublishRejectedError(`the stream ${ack.stream} has not stored the message yet (duplicate of a pending publish)`, 503);
}

interface Pending {
  subject: string;
  resolve(ack: PubAck): void;
  reject(err: Error): void;
  deadline: number;
}

/**
 * JetStream publishes with awaited acks, for a high rate of them. `JetStreamClient.publish` is a
 * request: per message a request object, a timer, a promise race and a retry loop, about 33 µs
 * of client CPU on this machine. Here one subscription receives every ack on
 * `<inbox>.<n>`, pending publishes wait in a map, and one sweep times out the late ones:
 * about 15 µs. Same wire protocol (a publish with a reply subject), same `Nats-Msg-Id`
 * dedupe, same answers: a PubAck, or an error for a refusal, no stream, or a timeout.
 * Unlike js.publish: no retries (the relay's poll is the retry), a timeout fires up to a
 * quarter of `timeoutMs` late (one sweep, not a timer each). A publish the server's
 * permissions refuse fails with a 403 `PublishRejectedError` as soon as the server says so
 * (its `-ERR` names only the subject, so every publish pending on that subject fails: one that
 * was in fact stored is published again and deduplicated). Replies use the connection's inbox prefix, as
 * nats.js's own requests do (`inboxPrefix`, default `_INBOX`). Like
 * js.publish, a duplicate answer with sequence 0 resolves: callers that drop their copy on an
 * ack check it with `storedAck`.
 */
export function createAckedPublisher(nc: NatsConnection, { timeoutMs = 5000 }: { timeoutMs?: number } = {}): AckedPublisher & { close(): void } {
  // ConnectionOptions.inboxPrefix: an account may only allow its users their own reply subjects.
  const prefix = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  const pending = new Map<number, Pending>();
  let next = 0;
  let closedWith: Error | undefined;

  const failAll = (err: Error) => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };

  const onAnswer = (msg: Msg) => {
    const id = Number(msg.subject.slice(prefix.length + 1));
    const p = pending.get(id);
    if (!p) return; // timed out already
    pending.delete(id);
    // A status-only answer: 503 is the server's "no responders", no stream takes the subject.
    if (msg.headers?.hasError || msg.data.length === 0) {
      const code = msg.headers?.code ?? 503;
      return p.reject(new PublishRejectedError(code === 503 ? `no stream takes ${p.subject}` : `publish to ${p.subject} answered ${code} ${msg.headers?.description ?? ""}`.trim(), code, undefined, code === 503));
    }
    let answer: { stream?: string; seq?: number; duplicate?: boolean; domain?: string; error?: { code: number; err_code?: number; description: string } };
    try {
      answer = msg.json();
    } catch {
      return p.reject(new PublishRejectedError("publish answered with something that is not JSON", 500));
    }
    if (answer.error) return p.reject(new PublishRejectedError(answer.error.description, answer.error.code, answer.error.err_code));
    if (!answer.stream) return p.reject(new PublishRejectedError("publish answered without a stream", 500));
    p.resolve({ stream: answer.stream, seq: answer.seq ?? 0, duplicate: answer.duplicate ?? false, domain: answer.domain } as PubAck);
  };
  let subscription: Subscription | undefined;
  const subscribe = () => {
    const sub: Subscription = nc.subscribe(`${prefix}.*`, {
      callback: (err, msg) => {
        if (!err) return onAnswer(msg);
        // The subscription is gone (a permissions error, say): no ack for what is pending can
        // arrive any more. The next publish subscribes again, so a passing fault (permissions
        // being changed) does not fail every later publish until a restart.
        if (subscription === sub) subscription = undefined;
        failAll(err);
      },
    });
    subscription = sub;
  };
  subscribe();

  // The server answers a refused publish with a connection-level `-ERR`, not on the reply
  // subject: without this, the relay would log a timeout 5 s later instead of the refusal.
  const status = nc.status() as AsyncIterable<Status> & { stop?(): void };
  void (async () => {
    for await (const s of status) {
      if (s.type !== "error" || !(s.error instanceof PermissionViolationError) || s.error.operation !== "publish") continue;
      const refusal = new PublishRejectedError(s.error.message, 403);
      for (const [id, p] of pending) {
        if (p.subject !== s.error.subject) continue;
        pending.delete(id);
        p.reject(refusal);
      }
    }
  })();

  // Deadlines grow with insertion order (a monotonic clock), so the sweep stops at the first
  // one still running.
  const sweep = setInterval(
    () => {
      const now = performance.now();
      for (const [id, p] of pending) {
        if (p.deadline > now) break;
        pending.delete(id);
        p.reject(new PublishTimeoutError(`no JetStream ack within ${timeoutMs} ms`));
      }
    },
    Math.max(20, Math.min(1000, timeoutMs / 4)),
  );
  sweep.unref();

  void nc.closed().then((err) => {
    closedWith = err instanceof Error ? err : new Error("the NATS connection is closed");
    clearInterval(sweep);
    status.stop?.();
    failAll(closedWith);
  });

  return {
    publish(subject, payload, { msgID, headers }) {
      if (closedWith) return Promise.reject(closedWith);
      if (!subscription) subscribe();
      return new Promise<PubAck>((resolve, reject) => {
        const id = next++;
        const h = headers ?? natsHeaders();
        h.set("Nats-Msg-Id", msgID);
        pending.set(id, { subject, resolve, reject, deadline: performance.now() + timeoutMs });
        try {
          nc.publish(subject, payload, { reply: `${prefix}.${id}`, headers: h });
        } catch (err) {
          // Closed or draining connection, bad subject: nothing went out.
          pending.delete(id);
          reject(err as Error);
        }
      });
    },
    close() {
      if (closedWith) return;
      closedWith = new Error("the publisher is closed");
      clearInterval(sweep);
      status.stop?.();
      subscription?.unsubscribe();
      failAll(closedWith);
    },
  };
}
