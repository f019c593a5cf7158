import type { JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Db, Tx } from "../db/database.js";
import { isDatabaseUnreachable, isPermanentDbError, reportableError } from "../db/errors.js";
import { abortableDelay, backoffMs } from "../lifecycle/delay.js";
import { jsonRows, prepared } from "../db/statement.js";
import { transactionWithQueued, type OutboxMessage } from "../outbox/handoff.js";
import { PermanentError, UnknownEventTypeError } from "../errors/index.js";
import type { CloudEvent } from "../events/envelope.js";
import type { EventData, EventName, StreamName } from "../events/catalog.js";
import { decodeEvent } from "../events/decode.js";
import { TRACEPARENT, type EventContext } from "../events/trace.js";
import type { Names } from "../nats/names.js";
import { ensureDurableConsumer, isStreamNotFound } from "../nats/streams.js";
import { publishDeadLetter } from "./dead-letter.js";
import { createPullLoop, eventLatencySeconds, type Deliveries, type PullLoop } from "./pull-loop.js";
import { STATEMENT_HANDLER, batchStatement, insertInbox, runBatchStatement, type StatementBackedHandler, type StatementHandler } from "./statement-handler.js";
import { readHeaders } from "../nats/headers.js";

export type EventHandlers = {
  /** `context` carries the message's trace context, for the events the handler queues in turn. */
  [N in EventName]?: (tx: Tx, event: CloudEvent<EventData<N>>, context: EventContext) => Promise<void>;
};

/** A handler looked up by a decoded event's name, whose data type is known only at run time. */
export type AnyEventHandler = (tx: Tx, event: CloudEvent, context: EventContext) => Promise<void>;

/** Read only if a handler asks: decoding a message's headers costs ~2 µs, and most handlers queue nothing. */
const contextOf = (msg: JsMsg): EventContext => ({
  get traceparent() {
    return readHeaders(msg)?.get(TRACEPARENT) || undefined;
  },
});

export interface RetryPolicy {
  /** nak delay after the 1st, 2nd, … failed delivery; the last value repeats. */
  delaysMs: number[];
  /** Deliveries before a transiently failing message is dead-lettered. */
  maxDeliver: number;
  /**
   * Deliveries after which a message that keeps coming back without any outcome (the process
   * dies while handling it, or a handler outlives ack_wait every time) is dead-lettered on
   * arrival instead of being handled again. Default: 4 × maxDeliver.
   */
  deliveryCap?: number;
}

/** A message was delivered again and again without the runner reaching an outcome for it. */
export class RedeliveryLimitError extends PermanentError {
  override name = "RedeliveryLimitError";
}

export interface ConsumerOptions {
  /** The connection `js` uses (see Settle in pull-loop.ts). */
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  db: Db;
  names: Names;
  log: Logger;
  stream: StreamName;
  /** Durable name before the namespace prefix; also the inbox's consumer key. */
  durable: string;
  filterSubject: string;
  handlers: EventHandlers;
  retry: RetryPolicy;
  /** Re-creates the streams when this consumer's has gone (see DurableSettings). */
  restoreStreams?: () => Promise<void>;
  ackWaitMs?: number;
  /** Recorded in the inbox as `processed_by`. */
  instance?: string;
  /** Called after a transaction that applied events commits, with the outbox messages its
   * handlers wrote (for the relay to publish at once). */
  onCommitted?: (messages: OutboxMessage[]) => void;
  /** Told how many messages came to each outcome (for metrics). */
  onOutcome?: (outcome: Outcome, n: number) => void;
  /**
   * Told, for each message acked after the commit that applied it, the seconds since its stream
   * stored it: how long events take to take effect here, queueing and retries included. (A
   * batch's first deliveries all count, a copy of an event already applied among them too.)
   */
  onLatency?: (seconds: number) => void;
  /**
   * How long a handler or batch is kept alive with `working()` (default 4 × ack_wait). Past it,
   * the server is left to redeliver its messages after ack_wait, to this or another replica.
   */
  maxHandlingMs?: number;
  /**
   * Most messages applied in one transaction. Messages that arrived while the previous
   * transaction ran are taken together, so a quiet consumer still handles each at once.
   */
  maxBatch?: number;
}

export type Consumer = PullLoop;

/** What a consumer's handling of a message came to (also the metrics' outcome label). */
export type Outcome = "applied" | "duplicate" | "retry" | "dead-lettered" | "held";
type Item = { msg: JsMsg; name: EventName; event: CloudEvent };
/** Consecutive messages of a batch that are applied the same way (see handleBatch). */
type Run = { kind: "single"; msgs: JsMsg[] } | { kind: "statement" | "transaction"; items: Item[] };

/**
 * What a stopping runner hands back is redelivered after this long, not at once: at once, the
 * server may send it straight back to this runner's pull, which is closing and would drop it,
 * leaving it to wait out ack_wait. By then another replica (or the next start) takes it.
 */
const HAND_BACK_DELAY_MS = 1000;

/** Records events as applied by a consumer; returns the ids that were not there yet. */
const INSERT_INBOX = insertInbox("json_to_recordset($3::text::json) as r(n int, event_id text, subject text, stream_seq bigint)");

const INBOX_HAS = "select 1 from inbox where consumer = $1::text and event_id = $2::text";

const recordInbox = async (tx: Tx, consumer: string, instance: string | undefined, rows: { event_id: string; subject: string; stream_seq: number }[]) =>
  new Set((await prepared<{ event_id: string }>(tx, INSERT_INBOX, [consumer, instance ?? null, jsonRows(rows)])).map((r) => r.event_id));

/**
 * Runs a durable pull consumer. First deliveries are decoded and applied in runs: a run's inbox
 * rows and handler writes commit together (one autocommitted statement for a statementHandler,
 * one transaction otherwise), and only then are its messages acked. Redeliveries, and the
 * events of a run that failed, go one at a time (decode and validate, then inbox row and handler
 * in one transaction, commit, ack), so one bad event cannot fail its neighbours. Permanent failures
 * go to the DLQ at once; transient ones are nak'ed with growing delays and dead-lettered after
 * `maxDeliver` deliveries. While the database is unreachable it stops pulling instead. The
 * server's own max_deliver is unlimited and the budget is kept here, so every message ends
 * applied or in the DLQ — none is dropped silently by the server.
 */
export function createConsumer(opts: ConsumerOptions): Consumer {
  const { js, db, names, log, durable, retry } = opts;
  const ackWaitMs = opts.ackWaitMs ?? 30_000;
  const maxBatch = Math.max(1, opts.maxBatch ?? 256);
  // Handlers written as SQL (statementHandler) apply batches in one autocommitted statement.
  const statements = new Map<EventName, { def: StatementHandler; text: string }>();
  for (const [name, handler] of Object.entries(opts.handlers) as [EventName, unknown][]) {
    const def = (handler as Partial<StatementBackedHandler<EventName>> | undefined)?.[STATEMENT_HANDLER];
    if (def) statements.set(name, { def: def as StatementHandler, text: batchStatement(def as StatementHandler) });
  }
  const deliveryCap = Math.max(retry.maxDeliver, retry.deliveryCap ?? retry.maxDeliver * 4);
  const maxHandlingMs = opts.maxHandlingMs ?? 4 * ackWaitMs;

  // Messages being handled are kept alive with working(), so a slow handler is not redelivered
  // under it, but not for ever: a query stuck on a connection that went silent (a blackholed
  // network, a failed-over server that never sent a reset) would otherwise keep its events on
  // this replica until TCP gives up, 15 minutes or more, while a probe on a fresh connection
  // answers. Past maxHandlingMs the runner stops keeping them alive and stops pulling, and hands
  // back what it has queued, so the server redelivers all of it (the stuck ones after ack_wait)
  // to other replicas, or to this one once the stuck batch ends. Whichever copy commits first
  // applies an event; the other finds its inbox row (or waits on its lock), so a late commit of
  // the stuck one applies nothing twice.
  let onStuck: (() => void) | undefined;
  function keepAlive(msgs: readonly JsMsg[], eventIds: readonly string[]): () => void {
    const started = Date.now();
    const timer = setInterval(
      () => {
        if (Date.now() - started < maxHandlingMs) {
          for (const m of msgs) settle.working(m);
          return;
        }
        clearInterval(timer);
        log.warn({ durable, eventIds, waitedMs: Date.now() - started }, "handling still unfinished; pulling no more and letting the server redeliver these events");
        onStuck?.();
      },
      Math.max(1000, Math.min(ackWaitMs / 3, maxHandlingMs / 2)),
    );
    return () => clearInterval(timer);
  }

  const ensure = () =>
    ensureDurableConsumer(opts.jsm, names, {
      stream: opts.stream,
      durable,
      filterSubject: opts.filterSubject,
      ackWaitMs,
      restoreStreams: opts.restoreStreams,
    });

  // While the database cannot be reached, the runner stops pulling and holds what it has instead
  // of retrying each message on its delays: every delivery would count against the message's
  // retry budget, and an outage longer than the budget would move every event in flight to the
  // DLQ. So the message whose handling found the database unreachable (checked with a probe: a
  // session the server closed over the work itself is not an outage) is kept in hand with
  // everything queued behind it, alive with `working()`, until a probe answers; then they are
  // handled and pulling starts again. An outage of any length costs them no delivery. (What the
  // server had already sent into the pull request still open when pulling stopped arrives
  // nowhere: it comes back after ack_wait with one delivery more.)
  let databaseDown = false;
  // A probe that does not answer in time counts as unreachable: a hung connection must not keep
  // the held events (alive with working()) or a shutdown waiting on it.
  const probeTimeoutMs = Math.min(5000, Math.max(1000, ackWaitMs / 6));
  const probe = (signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(Object.assign(new Error(`the database did not answer within ${probeTimeoutMs} ms`), { code: "CONNECT_TIMEOUT" })), probeTimeoutMs);
      const aborted = () => reject(Object.assign(new Error("stopping"), { code: "CONNECTION_ENDED" }));
      signal?.addEventListener("abort", aborted, { once: true });
      // A database that answers but refuses writes (a standby after a failover, a read-only
      // mode) is no more able to apply events than one that is down: the probe says so.
      prepared<{ ro: string }>(db, "select current_setting('transaction_read_only') as ro", [])
        .then(([row]) => (row?.ro === "on" ? reject(Object.assign(new Error("the database is read-only"), { code: "25006" })) : resolve()), reject)
        .finally(() => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", aborted);
        });
    });

  /** The error says the database is unreachable, and a probe agrees. */
  async function unreachable(err: unknown): Promise<boolean> {
    if (databaseDown) return true;
    if (!isDatabaseUnreachable(err)) return false;
    try {
      await probe();
      return false;
    } catch (probeErr) {
      return isDatabaseUnreachable(probeErr);
    }
  }

  /** How the logs name a message: its event's id once decoded, the publisher's Nats-Msg-Id before. */
  type Named = { eventId: string } | { msgId: string | undefined };

  function holdForDatabase(msg: JsMsg, error: Error, named: Named): Outcome {
    if (!databaseDown) log.warn({ durable, ...named, subject: msg.subject, err: error.message }, "database unreachable; holding events until it answers");
    databaseDown = true;
    return "held";
  }

  /** Before each consume loop: returns at once unless the database was found unreachable, then once it answers. */
  async function databaseAnswers(signal: AbortSignal): Promise<void> {
    for (let attempt = 0; databaseDown && !signal.aborted; attempt++) {
      try {
        await probe(signal);
        databaseDown = false;
        log.info({ durable }, "database reachable again; consuming");
      } catch (err) {
        log.debug({ durable, err: reportableError(err).message, attempt }, "database still unreachable");
        await abortableDelay(backoffMs(attempt, 250), signal).catch(() => {});
      }
    }
  }

  async function deadLetter(msg: JsMsg, error: Error, named: Named): Promise<Outcome> {
    // Bounded like the DLQ header: a validation error listing 30,000 bad items was a 6 MB log line.
    const fields = { ...named, subject: msg.subject, deliveries: msg.info.deliveryCount, err: error.message.slice(0, 2000), errorClass: error.name };
    try {
      await publishDeadLetter(js, names, msg, { consumer: durable, error });
    } catch (pubErr) {
      // The DLQ is unreachable: keep the message in its stream and try again later. No stream
      // takes the DLQ's subjects (it was deleted, or its store lost): create it again, as the
      // relay does for the event streams, or every such retry would fail the same way.
      if ((pubErr as Error)?.name === "JetStreamNotEnabled" || isStreamNotFound(pubErr)) {
        void opts.restoreStreams?.().catch((err: unknown) => log.warn({ err: reportableError(err).message }, "could not recreate the streams; retrying on the next failure"));
      }
      log.warn({ ...fields, dlqError: (pubErr as Error).message }, "dead-letter publish failed; will retry");
      settle.nak(msg, retry.delaysMs[0] ?? 1000);
      return "retry";
    }
    settle.term(msg);
    log.error(fields, "event dead-lettered");
    return "dead-lettered";
  }

  /** Whether the inbox holds the message's event; false for one that does not decode. Throws what the database throws. */
  async function alreadyApplied(msg: JsMsg): Promise<boolean> {
    let id: string;
    try {
      id = decodeEvent(msg.data).event.id;
    } catch {
      return false;
    }
    return (await prepared(db, INBOX_HAS, [durable, id])).length > 0;
  }

  async function handle(msg: JsMsg): Promise<Outcome> {
    const outcome = await handleOne(msg);
    opts.onOutcome?.(outcome, 1);
    // Applied only: a duplicate here is mostly a redelivery of an event applied earlier (its ack
    // lost), already observed then; counting it again would add its ack_wait to the tail.
    if (outcome === "applied") reportLatency([msg]);
    return outcome;
  }

  function reportLatency(msgs: readonly JsMsg[]) {
    if (!opts.onLatency) return;
    const now = Date.now();
    for (const m of msgs) {
      const seconds = eventLatencySeconds(m, now);
      if (seconds !== undefined) opts.onLatency(seconds);
    }
  }

  async function handleOne(msg: JsMsg): Promise<Outcome> {
    // The publisher's dedupe id: the event's own id for orderflow's outbox, another for a
    // replayed letter ("replay:…") or a foreign publisher; logged as such until the body is read.
    const headerId = readHeaders(msg)?.get("Nats-Msg-Id") || undefined;
    const deliveries = msg.info.deliveryCount;
    if (deliveries > 1) log.info({ msgId: headerId, subject: msg.subject, deliveries }, "redelivery");
    if (deliveries > deliveryCap) {
      // Applied already, only its acks were lost (or it waited out ack_wait in a pull buffer):
      // an ack, not a dead letter that a replay would find applied anyway.
      let applied = false;
      try {
        applied = await alreadyApplied(msg);
      } catch (err) {
        // Not knowing is no reason to give up on it while the database is away.
        if (await unreachable(err)) return holdForDatabase(msg, reportableError(err), { msgId: headerId });
        const delay = retry.delaysMs.at(-1) ?? 1000;
        log.warn({ msgId: headerId, subject: msg.subject, deliveries, err: reportableError(err).message, retryInMs: delay }, "could not look the event up in the inbox; retrying");
        settle.nak(msg, delay);
        return "retry";
      }
      if (applied) {
        settle.ack(msg);
        return "duplicate";
      }
      return deadLetter(msg, new RedeliveryLimitError(`delivered ${deliveries} times without an outcome (crash loop, or a handler slower than ack_wait)`), { msgId: headerId });
    }
    let decoded;
    try {
      decoded = decodeEvent(msg.data);
    } catch (err) {
      return deadLetter(msg, err as Error, { msgId: headerId });
    }
    const handler = opts.handlers[decoded.name] as AnyEventHandler | undefined;
    if (!handler) {
      return deadLetter(msg, new UnknownEventTypeError(`${durable} has no handler for ${decoded.event.type}`), { eventId: decoded.event.id });
    }
    const event = decoded.event as CloudEvent;
    const stopKeepingAlive = keepAlive([msg], [event.id]);
    const apply = () =>
      transactionWithQueued(db, async (tx) => {
        const fresh = await recordInbox(tx, durable, opts.instance, [{ event_id: event.id, subject: decoded.name, stream_seq: msg.seq }]);
        if (fresh.size === 0) return false;
        await handler(tx, event, contextOf(msg));
        return true;
      });
    let down = false;
    try {
      const { result: applied, queued } = await apply().catch(async (err: unknown) => {
        // A lost connection while the database answers again (an outage shorter than the probe,
        // a connection the server dropped): one more try in process before it counts.
        if (err instanceof PermanentError || !isDatabaseUnreachable(err) || (down = await unreachable(err))) throw err;
        return apply();
      });
      settle.ack(msg);
      if (applied) opts.onCommitted?.(queued);
      return applied ? "applied" : "duplicate";
    } catch (err) {
      const error = err instanceof PermanentError ? err : reportableError(err);
      if (!(err instanceof PermanentError) && (down || (await unreachable(err)))) return holdForDatabase(msg, error, { eventId: event.id });
      // A value or constraint the database refuses for this event's data fails the same way on
      // every delivery: no point waiting out the retry delays.
      if (error instanceof PermanentError || isPermanentDbError(err) || deliveries >= retry.maxDeliver) return deadLetter(msg, error, { eventId: event.id });
      const delay = retry.delaysMs[Math.min(deliveries - 1, retry.delaysMs.length - 1)] ?? 1000;
      log.warn({ eventId: event.id, subject: msg.subject, deliveries, err: error.message, retryInMs: delay }, "event failed; retrying");
      settle.nak(msg, delay);
      return "retry";
    } finally {
      stopKeepingAlive();
    }
  }

  /**
   * Applies first deliveries together. Events with a statement handler: one autocommitted
   * statement per event type records the inbox rows and applies them, then they are acked.
   * Others: one transaction with one multi-row inbox insert and the per-event handlers in turn,
   * commit, then ack. Redeliveries, undecodable messages, events a statement did not accept and
   * a batch that fails take the one-by-one path with its own retry and dead-letter treatment.
   * Everything keeps stream order: consecutive messages of one kind form a run, the runs are
   * applied in turn, and a run's one-by-one leftovers right after it. Once `signal` aborts, what
   * is not handled yet is handed back (nak) instead of being worked through. Returns what is
   * held for the database: the message that found it unreachable and everything after it.
   */
  async function handleBatch(batch: JsMsg[], signal: AbortSignal): Promise<JsMsg[]> {
    const runs: Run[] = [];
    for (const msg of batch) {
      let decoded;
      try {
        decoded = msg.info.deliveryCount > 1 ? undefined : decodeEvent(msg.data);
      } catch {
        decoded = undefined;
      }
      const last = runs.at(-1);
      if (!decoded || !opts.handlers[decoded.name]) {
        if (last?.kind === "single") last.msgs.push(msg);
        else runs.push({ kind: "single", msgs: [msg] });
        continue;
      }
      const item = { msg, name: decoded.name, event: decoded.event as CloudEvent };
      const kind = statements.has(item.name) ? "statement" : "transaction";
      if (last && last.kind === kind && (kind === "transaction" || last.items[0]!.name === item.name)) last.items.push(item);
      else runs.push({ kind, items: [item] });
    }
    for (const [i, run] of runs.entries()) {
      const alone: JsMsg[] = [];
      if (signal.aborted) return handBack(runs.slice(i).flatMap(messagesOf));
      if (run.kind === "single") alone.push(...run.msgs);
      else if (run.kind === "statement") await applyStatement(run.items[0]!.name, run.items, alone);
      else if (run.items.length === 1) alone.push(run.items[0]!.msg);
      else await applyInTransaction(run.items, alone);
      for (const [j, msg] of alone.entries()) {
        if (signal.aborted) return handBack([...alone.slice(j), ...runs.slice(i + 1).flatMap(messagesOf)]);
        if ((await handle(msg)) === "held") return [...alone.slice(j), ...runs.slice(i + 1).flatMap(messagesOf)];
      }
    }
    return [];
  }

  const messagesOf = (run: Run) => (run.kind === "single" ? run.msgs : run.items.map((i) => i.msg));
  const handBack = (msgs: JsMsg[]): JsMsg[] => (msgs.forEach((m) => settle.nak(m, HAND_BACK_DELAY_MS)), []);

  async function applyStatement(name: EventName, group: Item[], alone: JsMsg[]) {
    const { def, text } = statements.get(name)!;
    const stopKeepingAlive = keepAlive(group.map((i) => i.msg), group.map((i) => i.event.id));
    try {
      // The same event twice in one batch is applied once, like two deliveries would be.
      const distinct = [...new Map(group.map((i) => [i.event.id, i])).values()];
      const result = await runBatchStatement(db, text, def, durable, opts.instance, distinct.map((i) => ({ event: i.event, subject: name, streamSeq: i.msg.seq, context: contextOf(i.msg) })));
      const rejected = new Set(result.rejected);
      const acked: JsMsg[] = [];
      for (const i of group) {
        if (rejected.has(i.event.id)) alone.push(i.msg); // alone, its handler says why (e.g. a PermanentError)
        else {
          settle.ack(i.msg);
          acked.push(i.msg);
        }
      }
      opts.onOutcome?.("applied", result.fresh);
      opts.onOutcome?.("duplicate", acked.length - result.fresh);
      reportLatency(acked);
      if (result.fresh > 0) opts.onCommitted?.(result.queued);
    } catch (err) {
      log.warn({ durable, events: group.length, err: reportableError(err).message }, "batch failed; applying its events one by one");
      for (const i of group) alone.push(i.msg);
    } finally {
      stopKeepingAlive();
    }
  }

  async function applyInTransaction(items: Item[], alone: JsMsg[]) {
    const stopKeepingAlive = keepAlive(items.map((i) => i.msg), items.map((i) => i.event.id));
    try {
      const { result: applied, queued } = await transactionWithQueued(db, async (tx) => {
        const isFresh = await recordInbox(tx, durable, opts.instance, items.map((i) => ({ event_id: i.event.id, subject: i.name, stream_seq: i.msg.seq })));
        // The same event twice in one batch is applied once, like two deliveries would be.
        const todo = items.filter((i) => isFresh.delete(i.event.id));
        for (const i of todo) await (opts.handlers[i.name] as AnyEventHandler)(tx, i.event, contextOf(i.msg));
        return todo.length;
      });
      for (const i of items) settle.ack(i.msg);
      opts.onOutcome?.("applied", applied);
      opts.onOutcome?.("duplicate", items.length - applied);
      reportLatency(items.map((i) => i.msg));
      if (applied > 0) opts.onCommitted?.(queued);
    } catch (err) {
      log.warn({ durable, events: items.length, err: reportableError(err).message }, "batch failed; applying its events one by one");
      for (const i of items) alone.push(i.msg);
    } finally {
      stopKeepingAlive();
    }
  }

  // Messages are queued as they arrive; each transaction takes everything queued so far (up to
  // maxBatch), so batches grow only while the database is the bottleneck. At most one batch
  // waits behind the running one: the pump stops reading, so the client stops pulling, rather
  // than holding messages whose ack_wait runs out before they are handled.
  async function drain(current: Deliveries, signal: AbortSignal) {
    const queue: JsMsg[] = [];
    let wake: (() => void) | undefined;
    let space: (() => void) | undefined;
    let ended = false;
    let holding = false;
    let stuck = false;
    let failure: unknown;
    const pump = (async () => {
      try {
        for await (const msg of current) {
          if (stuck) {
            handBack([msg]);
            continue;
          }
          queue.push(msg);
          wake?.();
          if (queue.length >= maxBatch && !signal.aborted && !holding) await new Promise<void>((resolve) => (space = resolve));
        }
      } catch (err) {
        failure = err;
      } finally {
        ended = true;
        wake?.();
      }
    })();
    const makeSpace = () => {
      const resume = space;
      space = undefined;
      resume?.();
    };
    try {
      for (;;) {
        if (signal.aborted) {
          handBack(queue.splice(0)); // rather than leaving them to wait out ack_wait
          break;
        }
        if (queue.length === 0) {
          if (ended) break;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        const batch = queue.splice(0, maxBatch);
        makeSpace();
        onStuck = () => {
          if (stuck) return;
          stuck = true;
          current.stop();
          handBack(queue.splice(0));
          makeSpace();
        };
        const held = await handleBatch(batch, signal).finally(() => (onStuck = undefined));
        if (held.length > 0) {
          // Pull no more; the pump takes in what the client already has, to be held too. The
          // consume loop ends once the queue is worked off, and starts again from the top.
          queue.unshift(...held);
          current.stop();
          holding = true;
          makeSpace();
          // Alive from now until each is handled, also behind the batches after the hold.
          const waiting = new Set<JsMsg>(queue);
          const alive = () => {
            // What the pump still takes in from the client's buffer is held too.
            if (holding) for (const m of queue) waiting.add(m);
            for (const m of waiting) if (queue.includes(m)) settle.working(m);
            else waiting.delete(m);
            if (waiting.size === 0) clearInterval(keepAlive);
          };
          const keepAlive = setInterval(alive, Math.max(1000, ackWaitMs / 3));
          alive();
          await databaseAnswers(signal);
          holding = false;
          if (signal.aborted) clearInterval(keepAlive);
        }
      }
    } finally {
      makeSpace();
    }
    if (signal.aborted) current.stop(); // ends the pump, which is awaited below
    await pump;
    if (signal.aborted) handBack(queue.splice(0));
    else if (failure) throw failure;
  }

  const loop = createPullLoop({
    nc: opts.nc,
    js,
    names,
    log,
    stream: opts.stream,
    durable,
    ensure,
    maxMessages: Math.max(128, maxBatch * 2),
    beforeConsume: databaseAnswers,
    drain,
  });
  const { settle } = loop;
  return loop;
}
