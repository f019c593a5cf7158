import { describe, expect, it } from "vitest";
import { parseReplayArgs, ReplayUsageError } from "./args.js";
import { renderProgress } from "./progress.js";

describe("parseReplayArgs", () => {
  it("reads the service, one starting point and --dry-run", () => {
    expect(parseReplayArgs(["--service", "user-service"])).toEqual({ service: "user-service", dryRun: false, force: false });
    expect(parseReplayArgs(["--from-seq", "10", "--dry-run"])).toEqual({ fromSeq: 10, dryRun: true, force: false });
    expect(parseReplayArgs(["--force"])).toEqual({ dryRun: false, force: true });
    expect(parseReplayArgs(["--from-time", "2026-02-28"]).fromTime).toEqual(new Date("2026-02-28T00:00:00Z"));
    expect(parseReplayArgs(["--from-time", "2026-01-02T03:04:05Z"]).fromTime).toEqual(new Date("2026-01-02T03:04:05Z"));
    // Lower-case "t" and "z" are RFC 3339 too, as the event log's `from` takes them.
    expect(parseReplayArgs(["--from-time", "2026-01-02t03:04:05+01:00"]).fromTime).toEqual(new Date("2026-01-02T02:04:05Z"));
    expect(parseReplayArgs(["--from-time", "2026-01-02t03:04:05z"]).fromTime).toEqual(new Date("2026-01-02T03:04:05Z"));
    // A time without a zone would be read in the machine's own zone: refused, with the fix.
    expect(() => parseReplayArgs(["--from-time", "2026-01-02T03:04:05"])).toThrow("--from-time needs a zone after its time (Z, or ±hh:mm): 2026-01-02T03:04:05Z is UTC");
  });

  it("rejects unknown flags, both starting points and malformed values", () => {
    for (const bad of [["--nope"], ["--from-seq", "0"], ["--from-seq", "1.5"], ["--from-time", "yesterday"], ["--from-seq", "1", "--from-time", "2026-01-01T00:00:00Z"], ["extra"], ["--from-time", "2026-11-31"], ["--from-time", "2026-11-27junk"], ["--from-time", "2026-02-29T00:00Z"], ["--force", "--from-seq", "3"]]) {
      expect(() => parseReplayArgs(bad), bad.join(" ")).toThrow(ReplayUsageError);
    }
  });

  it("asks for help with --help or -h, whatever else is given, and only then", () => {
    for (const argv of [["--help"], ["-h"], ["--service", "user-service", "--from-seq", "0", "-h"]]) expect(parseReplayArgs(argv), argv.join(" ")).toEqual({ dryRun: false, force: false, help: true });
    expect(parseReplayArgs(["--dry-run"]).help).toBeUndefined();
  });

  it("refuses a value flag given twice instead of taking the last", () => {
    for (const [bad, sentence] of [
      [["--from-seq", "5", "--from-seq", "9"], "--from-seq given 2 times; give it once"],
      [["--from-time=2026-01-01", "--from-time", "2026-02-01"], "--from-time given 2 times; give it once"],
      [["--service", "a", "--service", "a", "--service", "b"], "--service given 3 times; give it once"],
    ] as const) {
      expect(() => parseReplayArgs([...bad]), bad.join(" ")).toThrow(new ReplayUsageError(sentence));
    }
  });
});

describe("renderProgress", () => {
  it("draws a bar with percentage and counts, full when there is nothing to do", () => {
    expect(renderProgress(420, 1000, 10)).toBe("[####------]  42% 420/1000");
    expect(renderProgress(0, 0, 4)).toBe("[####] 100% 0/0");
  });
});
