import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { packageVersion } from "./version.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A service folder with this package.json, and the URL its dist/main.js would have. */
function service(manifest: object): string {
  const dir = mkdtempSync(join(tmpdir(), "of-version-"));
  dirs.push(dir);
  mkdirSync(join(dir, "dist"));
  writeFileSync(join(dir, "package.json"), JSON.stringify(manifest));
  return pathToFileURL(join(dir, "dist", "main.js")).href;
}

describe("packageVersion", () => {
  it("reads the version of the package.json beside the service's dist/ (no npm_package_version needed)", () => {
    expect(packageVersion(service({ name: "x", version: "2.3.4" }))).toBe("2.3.4");
  });

  it("names the file when it has no version", () => {
    expect(() => packageVersion(service({ name: "x" }))).toThrow(/no version in .*package\.json/);
  });
});
