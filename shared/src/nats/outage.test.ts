import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../logger/index.js";
import { watchOutages } from "./outage.js";

// The probes' timing is what is under test, so the clock is a fake one and each probe's answer
// is a promise the test settles; the real connection is exercised in connect.test.ts.
describe("watchOutages", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  const setup = () => {
    const lines: { level: number; msg: string; cause?: string }[] = [];
    const destination = new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) });
    const log = createLogger({ service: "outage-test", level: "debug", destination });
    const answers: ((cause: string | undefined) => void)[] = [];
    const probe = vi.fn(() => new Promise<string | undefined>((answer) => answers.push(answer)));
    const watch = watchOutages({ first: 100, every: 1000, probe, log });
    const answer = (i: number, cause: string | undefined) => {
      const settle = answers[i];
      if (!settle) throw new Error(`probe ${i} was never started`);
      settle(cause);
    };
    const warnings = () => lines.filter((l) => l.level === 40).map((l) => l.cause);
    /** Lets `ms` pass; by then `calls` probes have started. */
    const after = async (ms: number, calls: number) => {
      await vi.advanceTimersByTimeAsync(ms);
      expect(probe).toHaveBeenCalledTimes(calls);
    };
    return { watch, probe, answer, lines, warnings, after };
  };

  it("probes once the outage outlasts `first`, then every `every`, and warns once per cause", async () => {
    const { watch, probe, answer, lines, warnings, after } = setup();
    watch.lost();
    watch.lost(); // the same outage told twice ("disconnect", then "reconnecting")
    await after(99, 0);
    await after(1, 1);
    answer(0, "connection refused");
    await after(1000, 2);
    answer(1, "connection refused");
    await vi.advanceTimersByTimeAsync(1000);
    answer(2, "Authorization Violation");
    await vi.advanceTimersByTimeAsync(0);
    expect(warnings()).toEqual(["connection refused", "Authorization Violation"]);
    expect(lines.filter((l) => l.msg === "nats still disconnected")).toHaveLength(3); // the repeat at debug
    watch.restored();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(probe).toHaveBeenCalledTimes(3);
    // A new outage warns of the same cause again.
    watch.lost();
    await vi.advanceTimersByTimeAsync(100);
    answer(3, "connection refused");
    await vi.advanceTimersByTimeAsync(0);
    expect(warnings()).toEqual(["connection refused", "Authorization Violation", "connection refused"]);
  });

  it("a probe still running when the connection came back and went again neither reports nor starts a second round", async () => {
    const { watch, answer, warnings, after } = setup();
    watch.lost();
    await after(100, 1); // in flight
    watch.restored();
    watch.lost(); // a flap: the next outage starts its own round
    answer(0, "from the outage that ended");
    await after(100, 2);
    answer(1, "connection refused");
    // One round: one probe per `every`, not two.
    await after(1000, 3);
    answer(2, "connection refused");
    await after(1000, 4);
    expect(warnings()).toEqual(["connection refused"]);
  });

  it("says the client's own report of a failed reconnect once, and only while disconnected", async () => {
    const { watch, probe, answer, warnings } = setup();
    watch.told("Authorization Violation"); // connected: nothing to explain
    watch.lost();
    watch.told("Authorization Violation");
    watch.told("Authorization Violation");
    await vi.advanceTimersByTimeAsync(100);
    answer(0, "Authorization Violation"); // the probe finds the same: debug only
    await vi.advanceTimersByTimeAsync(0);
    expect(warnings()).toEqual(["Authorization Violation"]);
    expect(probe).toHaveBeenCalledTimes(1);
  });

  it("stops for good when the connection is closed, a probe in flight included", async () => {
    const { watch, probe, answer, lines } = setup();
    watch.lost();
    await vi.advanceTimersByTimeAsync(100);
    watch.stop();
    answer(0, "connection refused");
    watch.lost(); // a late status report after the close
    await vi.advanceTimersByTimeAsync(60_000);
    expect(probe).toHaveBeenCalledTimes(1);
    expect(lines).toEqual([]);
  });
});
