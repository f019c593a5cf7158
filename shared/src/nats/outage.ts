import type { Logger } from "pino";

/** What a lost connection's watcher is told by the connection's status stream. */
export interface OutageWatch {
  /** The connection is down (again: repeated reports of one outage are one outage). */
  lost(): void;
  /** It is back: the probes stop. */
  restored(): void;
  /** The client's own report of why a reconnect failed (e.g. "Authorization Violation"). */
  told(cause: string): void;
  /** The connection is closed for good: no probe runs, none in flight reports. */
  stop(): void;
}

export interface OutageWatchOptions {
  /** How long an outage may last before the first probe, and then how often to ask again. */
  first: number;
  every: number;
  /** Why a fresh connect fails now; undefined when it succeeds. */
  probe: () => Promise<string | undefined>;
  log: Logger;
}

/**
 * Says why a lost NATS connection stays lost: nats.js keeps the reasons its reconnects fail to
 * itself, so once an outage outlasts `first` a one-off connect (`probe`) asks, and again every
 * `every` while it lasts. Each cause is warned of once per outage, later sightings go to debug.
 */
export function watchOutages({ first, every, probe, log }: OutageWatchOptions): OutageWatch {
  let down = false;
  let stopped = false;
  // Which outage a probe belongs to: one still running when the connection came back (and
  // perhaps went again) must neither report nor start a second round of probes.
  let outage = 0;
  let timer: NodeJS.Timeout | undefined;
  // Causes already warned of in this outage. One cause can read differently from one attempt to
  // the next (a refused certificate: the TLS alert, or the reset that overtook it).
  const warned = new Set<string>();
  const diagnose = async (of: number) => {
    // A probe that throws says why as well as one that answers.
    const cause = await probe().catch((err: unknown) => (err as Error)?.message ?? String(err));
    if (of !== outage) return;
    if (cause !== undefined) log[warned.has(cause) ? "debug" : "warn"]({ cause }, "nats still disconnected");
    if (cause !== undefined) warned.add(cause);
    timer = setTimeout(() => void diagnose(of), every).unref();
  };
  const end = () => {
    down = false;
    outage += 1; // a probe in flight belongs to no outage any more
    clearTimeout(timer);
  };
  return {
    lost() {
      if (down || stopped) return;
      down = true;
      warned.clear();
      const of = ++outage;
      timer = setTimeout(() => void diagnose(of), first).unref();
    },
    restored: end,
    told(cause) {
      if (!down || warned.has(cause)) return;
      warned.add(cause);
      log.warn({ cause }, "nats still disconnected");
    },
    stop() {
      stopped = true;
      end();
    },
  };
}
