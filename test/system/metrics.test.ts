import { afterAll, describe, expect, it } from "vitest";
import { startSystem, waitFor, type TestSystem } from "@orderflow/shared/testing";
import { email, register, registerOk, waitForCount } from "./helpers.js";

let sys: TestSystem | undefined;
afterAll(async () => {
  await sys?.cleanup();
});

/** The samples of a Prometheus exposition, as `name{labels}` → value (labels as written, minus `service`). */
async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = (m[2] ?? "").split(/,(?=[a-z_]+=")/).filter((l) => l && !l.startsWith("service=")).join(",");
    samples.set(labels ? `${m[1]}{${labels}}` : m[1]!, Number(m[3]));
  }
  return samples;
}

describe("metrics", () => {
  it("counts requests by route and status, events by outcome, publishes, and reads consumer lag, outbox backlog and dependencies when scraped", async () => {
    sys = await startSystem({ services: ["user-service", "order-service", "event-log"] });
    const { "user-service": users, "order-service": orders, "event-log": log } = sys.services;
    const created = [await registerOk(users.url), await registerOk(users.url), await registerOk(users.url)];
    expect((await register(users.url, { email: created[0]!.email })).status).toBe(409);
    expect((await fetch(`${users.url}/users/01a21e26-0000-7000-8000-000000000000`)).status).toBe(404);
    expect((await fetch(`${users.url}/nowhere/${email()}`)).status).toBe(404);
    for (const u of created) await waitForCount(users.url, u.id, 1);

    const u = await waitFor(async () => ((s) => (s.get('orderflow_consumer_events_total{consumer="user-service",outcome="applied"}') === 3 ? s : undefined))(await scrape(users.metricsPort)), {
      what: "user-service to count the three orders.created it applied",
    });
    expect(u.get('orderflow_http_requests_total{method="POST",route="/users",status="201"}')).toBe(3);
    expect(u.get('orderflow_http_requests_total{method="POST",route="/users",status="409"}')).toBe(1);
    expect(u.get('orderflow_http_requests_total{method="GET",route="/users/:id",status="404"}')).toBe(1);
    // A path no route serves is one series, whatever the path.
    expect(u.get('orderflow_http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(1);
    expect(u.get('orderflow_http_request_duration_seconds_count{method="POST",route="/users"}')).toBe(4);
    expect(u.get("orderflow_outbox_published_total")).toBeGreaterThanOrEqual(3);
    expect(u.get("orderflow_outbox_publish_failures_total")).toBe(0);
    expect(u.get('orderflow_consumer_messages{consumer="user-service",state="pending"}')).toBe(0);
    // Everything applied and acked: nothing is on its way to expiring unapplied.
    expect(u.get('orderflow_consumer_oldest_unacked_age_seconds{consumer="user-service"}')).toBe(0);
    expect(u.get('orderflow_dependency_up{check="database"}')).toBe(1);
    expect(u.get('orderflow_dependency_up{check="nats"}')).toBe(1);
    expect(u.get("orderflow_dlq_messages")).toBe(0);
    expect(u.get("nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    await waitFor(async () => (await scrape(users.metricsPort)).get("orderflow_outbox_backlog") === 0, { what: "an empty outbox" });

    const o = await scrape(orders.metricsPort);
    expect(o.get('orderflow_consumer_events_total{consumer="order-service",outcome="applied"}')).toBe(3);
    expect(o.get("orderflow_outbox_published_total")).toBeGreaterThanOrEqual(3);
    // How long each event took to take effect: from the stream storing it to the ack after commit.
    expect(o.get('orderflow_consumer_event_latency_seconds_count{consumer="order-service"}')).toBe(3);
    expect(o.get('orderflow_consumer_event_latency_seconds_bucket{le="+Inf",consumer="order-service"}')).toBe(3);
    expect(o.get('orderflow_consumer_event_latency_seconds_sum{consumer="order-service"}')).toBeGreaterThan(0);
    expect(u.get('orderflow_consumer_event_latency_seconds_count{consumer="user-service"}')).toBe(3);

    // Each request under the route that answered it: /events/stats and /events/stream also match /events/:id.
    expect((await fetch(`${log.url}/events/stats`)).status).toBe(200);
    expect((await fetch(`${log.url}/events/01a21e26-0000-7000-8000-000000000000`)).status).toBe(404);
    expect((await fetch(`${log.url}/events`, { method: "DELETE" })).status).toBe(405);
    const l = await scrape(log.metricsPort);
    expect(l.get('orderflow_http_requests_total{method="GET",route="/events/stats",status="200"}')).toBe(1);
    expect(l.get('orderflow_http_requests_total{method="GET",route="/events/:id",status="404"}')).toBe(1);
    expect(l.get('orderflow_http_requests_total{method="DELETE",route="unmatched",status="405"}')).toBe(1);

    // The event log's ingesters report their lag like the consumers do.
    await waitFor(async () => (await scrape(log.metricsPort)).get('orderflow_consumer_messages{consumer="event-log-users",state="pending"}') === 0, { what: "the event log's USERS ingester caught up" });
    expect([...(await scrape(log.metricsPort)).keys()].filter((k) => k.startsWith('orderflow_consumer_messages{consumer="event-log-') && k.endsWith('state="pending"}'))).toHaveLength(4);
    expect([...(await scrape(log.metricsPort)).keys()].filter((k) => k.startsWith('orderflow_consumer_oldest_unacked_age_seconds{consumer="event-log-'))).toHaveLength(4);
    // … and count what they stored, like the consumers; it has no outbox, so no publish counters.
    const stored = (s: Map<string, number>, consumer: string) => s.get(`orderflow_consumer_events_total{consumer="${consumer}",outcome="applied"}`);
    const logged = await waitFor(async () => ((s) => (stored(s, "event-log-users") === 3 && stored(s, "event-log-orders") === 3 ? s : undefined))(await scrape(log.metricsPort)), {
      what: "the event log to count the three registrations and three orders it stored",
    });
    expect([...logged.keys()].filter((k) => k.startsWith("orderflow_outbox_"))).toEqual([]);
    // Its ingesters report the latency of what they stored, as the consumers do.
    for (const consumer of ["event-log-users", "event-log-orders"]) expect(logged.get(`orderflow_consumer_event_latency_seconds_count{consumer="${consumer}"}`), consumer).toBe(3);

    // Only on its own port: the service's port (behind the Ingress) does not serve it.
    expect((await fetch(`${users.url}/metrics`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${users.metricsPort}/other`)).status).toBe(404);
  });
});
