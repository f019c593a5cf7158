import { readFileSync } from "node:fs";
import type { ServiceApp } from "@orderflow/shared";

/** The page is one static file (no build step); read once when the app is built. */
const pageFile = new URL("../../public/index.html", import.meta.url);

export function registerPage(app: ServiceApp) {
  const html = readFileSync(pageFile, "utf8");
  app.get("/", (c) =>
    c.html(html, 200, {
      "cache-control": "no-cache",
      "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    }),
  );
}
