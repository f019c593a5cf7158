import { asc, gt, max } from "drizzle-orm";
import { reportableError, type Db, type Logger } from "@orderflow/shared";
import { events, type EventRow } from "../db/schema.js";

export interface Tail {
  /**
   * Resolves once the tail knows its position: the listener gets every row stored after
   * `position` (the last seq dispatched), so a catch-up query after it leaves no gap.
   */
  subscribe(listener: (rows: EventRow[]) => void, onClose?: () => void): Promise<{ position: number; unsubscribe: () => void }>;
  /** Rows were stored in this process: look now instead of at the next poll. */
  notify(): void;
  /** Ends every live stream (on shutdown, so open SSE requests do not hold the HTTP server). */
  close(): void;
}

/**
 * One poller per process feeding every live-tail client: reads rows past the last seen seq as
 * soon as this process stores some, and every `pollMs` for rows other replicas stored. It runs
 * only while someone listens.
 */
export function createTail({ db, log, pollMs = 250, batch = 500 }: { db: Db; log: Logger; pollMs?: number; batch?: number }): Tail {
  const listeners = new Set<(rows: EventRow[]) => void>();
  const closers = new Map<(rows: EventRow[]) => void, () => void>();
  let last: number | undefined;
  let ready: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let polling = false;
  /** Subscribes waiting for the position: the last listener leaving must not reset it under them. */
  let pending = 0;
  let again = false;
  let closed = false;

  async function poll() {
    if (polling) {
      again = true;
      return;
    }
    polling = true;
    clearTimeout(timer);
    try {
      do {
        again = false;
        const rows = await db.select().from(events).where(gt(events.seq, last!)).orderBy(asc(events.seq)).limit(batch);
        if (rows.length > 0) {
          last = rows.at(-1)!.seq;
          for (const l of listeners) l(rows);
          if (rows.length === batch) again = true;
        }
      } while (again && listeners.size > 0);
    } catch (err) {
      log.warn({ err: reportableError(err).message }, "live tail poll failed");
    } finally {
      polling = false;
      if (listeners.size > 0 && !closed) timer = setTimeout(() => void poll(), pollMs);
    }
  }

  return {
    async subscribe(listener, onClose) {
      if (closed) throw new Error("the live tail is closed");
      ready ??= (async () => {
        const [row] = await db.select({ seq: max(events.seq) }).from(events);
        last = Number(row?.seq ?? 0);
      })().catch((err) => {
        ready = undefined;
        throw err;
      });
      pending++;
      try {
        await ready;
      } finally {
        pending--;
      }
      // Closed while this waited: a listener added now would never be told, and its stream would
      // hold the server open until the shutdown deadline.
      if (closed) throw new Error("the live tail is closed");
      listeners.add(listener);
      if (onClose) closers.set(listener, onClose);
      if (listeners.size === 1) timer = setTimeout(() => void poll(), pollMs);
      const unsubscribe = () => {
        listeners.delete(listener);
        closers.delete(listener);
        if (listeners.size === 0) {
          clearTimeout(timer);
          // Nobody listens: forget the position, so the next client starts from "now" — unless a
          // subscribe is about to take it: a fresh max(seq) would skip rows that one is owed.
          if (pending === 0) ready = undefined;
        }
      };
      return { position: last!, unsubscribe };
    },
    notify() {
      if (listeners.size > 0 && last !== undefined) void poll();
    },
    close() {
      closed = true;
      clearTimeout(timer);
      for (const c of closers.values()) c();
      listeners.clear();
      closers.clear();
    },
  };
}
