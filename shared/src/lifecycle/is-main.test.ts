import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { isMain } from "./is-main.js";

const dir = mkdtempSync(join(tmpdir(), "of-is-main #1 "));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("isMain", () => {
  it("recognises the script node started, also through a symlink in a directory whose name a URL escapes", () => {
    const self = fileURLToPath(import.meta.url);
    const link = join(dir, "replay.js");
    symlinkSync(self, link);
    expect(isMain(import.meta.url, self)).toBe(true);
    expect(isMain(import.meta.url, link)).toBe(true);
    expect(isMain(import.meta.url, join(dir, "other.js"))).toBe(false);
    expect(isMain(import.meta.url, undefined)).toBe(false);
  });
});
