import { readFileSync } from "node:fs";

/**
 * The version in the package.json beside a service's src/ and dist/ (`packageVersion(import.meta.url)`
 * from its main.ts). npm_package_version is set only under `npm run`; the image and `npm start`
 * run `node dist/main.js`, so it is read from the file, which every image carries.
 */
export function packageVersion(moduleUrl: string): string {
  const manifest = JSON.parse(readFileSync(new URL("../package.json", moduleUrl), "utf8")) as { version?: unknown };
  if (typeof manifest.version !== "string") throw new Error(`no version in ${new URL("../package.json", moduleUrl).pathname}`);
  return manifest.version;
}
