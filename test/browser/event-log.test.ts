import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser } from "playwright-core";
import { jetstream } from "@nats-io/jetstream";
import {
  connectTestNats,
  createTestDatabase,
  freePort,
  repoRoot,
  startProcess,
  startSystem,
  teardown,
  testNatsUrl,
  waitReady,
  type ManagedProcess,
  type TestDatabase,
  type TestSystem,
} from "@orderflow/shared/testing";

// Debian's Chromium (apt-get install -y chromium); playwright-core never downloads a browser.
const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const artifacts = join(repoRoot, "test-artifacts");

let sys: TestSystem;
let logDb: TestDatabase;
let eventLog: ManagedProcess;
let eventLogUrl: string;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  sys = await startSystem();
  logDb = await createTestDatabase("of_eventlog_web");
  const port = await freePort();
  eventLogUrl = `http://127.0.0.1:${port}`;
  eventLog = startProcess(join(repoRoot, "services", "event-log", "dist", "main.js"), [], {
    PORT: String(port),
    HOST: "127.0.0.1",
    DATABASE_URL: logDb.url,
    NATS_URL: testNatsUrl(),
    NATS_NAMESPACE: sys.namespace,
    LOG_LEVEL: "warn",
  }, { cwd: join(repoRoot, "services", "event-log") });
  await waitReady(eventLogUrl, eventLog);
  // A fresh temporary profile (--user-data-dir) per launch is Playwright's default.
  browser = await chromium.launch({ executablePath, args: flags, headless: true });
});
afterAll(() =>
  teardown(
    () => browser?.close(),
    () => eventLog?.kill("SIGKILL"),
    () => logDb?.drop(),
    () => sys?.cleanup(),
  ),
);

describe("event log page in Chromium", () => {
  it("shows a newly registered user's events appear live, filters them, and lists service lifecycle", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(eventLogUrl);
    await expect.poll(() => page.getByRole("status").textContent(), { timeout: 15_000 }).toBe("live");

    const res = await fetch(`${sys.services["user-service"].url}/users`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: `web${Date.now()}@example.com`, name: "Grace Hopper" }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };

    const group = page.locator(`article[data-entity="${id}"]`);
    await group.locator('li[data-type="io.orderflow.user.registered.v1"]').waitFor({ timeout: 15_000 });
    await group.locator('li[data-type="io.orderflow.order.created.v1"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => group.locator("li").allTextContents()).toEqual([expect.stringMatching(/^users\.registered/), expect.stringMatching(/^orders\.created/)]);

    // System events of each service (published before the log started; read from the stream's start).
    for (const service of ["user-service", "order-service", "event-log"]) {
      await page.locator(`#services tr[data-service^="${service}/"]`).first().waitFor({ timeout: 15_000 });
    }
    // Per-type counts chart.
    await page.locator('#legend li[data-type="io.orderflow.order.created.v1"]').waitFor({ timeout: 15_000 });

    // Filters, through their accessible labels.
    await page.getByRole("textbox", { name: "Entity" }).fill(id);
    await expect.poll(() => page.locator("article.group").count()).toBe(1);
    await page.getByRole("combobox", { name: "Type" }).selectOption({ label: "orders.created" });
    await expect.poll(() => group.locator("li").count()).toBe(1);
    await page.getByRole("button", { name: "Clear" }).click();
    await expect.poll(() => page.getByRole("textbox", { name: "Entity" }).inputValue()).toBe("");

    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, "event-log.png");
    await page.screenshot({ path: shot, fullPage: true });
    // The README's picture: written when missing or on request, so a test run leaves the tree clean.
    const readmeShot = join(repoRoot, "docs", "event-log.png");
    if (!existsSync(readmeShot) || process.env.UPDATE_SCREENSHOTS === "1") {
      mkdirSync(join(repoRoot, "docs"), { recursive: true });
      copyFileSync(shot, readmeShot);
    }
    expect(errors).toEqual([]);
    await page.close();
  });
  it("goes live again after the live tail answers 503 (database down, tails full), which closes an EventSource for good", async () => {
    const page = await browser.newPage();
    let refused = 0;
    // The first stream request gets the 503 the service gives past its request deadline.
    await page.route("**/events/stream*", async (route) => {
      if (refused++ > 0) return route.continue();
      await route.fulfill({ status: 503, contentType: "application/problem+json", headers: { "retry-after": "5" }, body: JSON.stringify({ type: "about:blank", title: "Service Unavailable", status: 503 }) });
    });
    await page.goto(eventLogUrl);
    await expect.poll(() => page.getByRole("status").textContent(), { timeout: 5_000 }).toBe("reconnecting…");
    await expect.poll(() => page.getByRole("status").textContent(), { timeout: 15_000 }).toBe("live");
    expect(refused).toBe(2);
    await page.close();
  });

  it("logs no warning or error through a normal run (at LOG_LEVEL=warn every line would be one)", () => {
    // e.g. an outbox relay polling a table this service does not have, every few seconds forever.
    expect(eventLog.output.filter((l) => l.startsWith("{"))).toEqual([]);
  });

  it("shows an event type a publisher planted as text, never as markup that runs", async () => {
    const planted = `<img src=x onerror="window.__planted=1">`;
    const nc = await connectTestNats();
    try {
      const body = { specversion: "1.0", id: crypto.randomUUID(), source: "/planted", type: planted, time: new Date().toISOString(), data: {} };
      await jetstream(nc).publish(`${sys.namespace}.users.planted`, JSON.stringify(body));
    } finally {
      await nc.close();
    }
    const page = await browser.newPage();
    await page.goto(eventLogUrl);
    const legend = page.locator("#legend li").filter({ hasText: planted });
    await legend.waitFor({ timeout: 15_000 });
    expect(await page.locator("#chart title").allTextContents()).toContainEqual(expect.stringContaining(planted));
    expect(await page.evaluate(() => (globalThis as { __planted?: number }).__planted)).toBeUndefined();
    expect(await page.locator("#chart img").count()).toBe(0);
    await page.close();
  });
});
