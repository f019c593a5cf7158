import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { StartupError } from "../errors/index.js";
import { within } from "../lifecycle/within.js";

import type { Outcome } from "../consumer/runner.js";

/**
 * A service's Prometheus metrics, in a registry of its own (no process-wide default), so tests
 * and several services in one process never share counters. Gauges that need a query (consumer
 * lag, outbox backlog) are read when scraped, not kept up to date on the hot path.
 */
export interface Metrics {
  readonly registry: Registry;
  /** One HTTP request answered: `route` is the matched route pattern ("unmatched" for none). */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  /** Messages a consumer finished with, by outcome. */
  countEvents(consumer: string, outcome: Outcome, n?: number): void;
  /** Records, for `consumer`, the seconds from JetStream storing an event to its ack as applied. */
  eventLatency(consumer: string): (seconds: number) => void;
  /** Outbox rows published (and acknowledged by JetStream), or publishes that failed. */
  countPublished(n: number): void;
  countPublishFailures(n: number): void;
  /**
   * A gauge read at scrape time; `read` returns one value per label set, or undefined when its
   * source cannot say (the gauge is then left out of the scrape, as when `read` fails).
   */
  gaugeOnScrape<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Promise<{ labels: Record<L, string>; value: number }[] | undefined>): void;
  /** The exposition text (what GET /metrics answers). */
  text(): Promise<string>;
}

// Seconds; the services answer in milliseconds, the live tail and a database outage in seconds.
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
// Seconds; milliseconds when the pipeline keeps up, up to hours behind an outage or a retry's delay.
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** `outbox: false` for a service without one (the event log): its publish counters would only ever read 0. */
export function createMetrics({ service, defaultMetrics = true, outbox = true }: { service: string; defaultMetrics?: boolean; outbox?: boolean }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  // Node's own: heap, GC, event-loop lag, handles, CPU.
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: "orderflow_http_requests_total", help: "HTTP requests answered, by method, route pattern and status", labelNames: ["method", "route", "status"] as const, registers: [registry] });
  const duration = new Histogram({ name: "orderflow_http_request_duration_seconds", help: "Time to the response's headers, by method and route pattern", labelNames: ["method", "route"] as const, buckets: HTTP_BUCKETS, registers: [registry] });
  const events = new Counter({ name: "orderflow_consumer_events_total", help: "Messages a consumer finished with, by outcome (applied, duplicate, retry, dead-lettered, held)", labelNames: ["consumer", "outcome"] as const, registers: [registry] });
  const latency = new Histogram({ name: "orderflow_consumer_event_latency_seconds", help: "Time from JetStream storing an event to a consumer acking it after the commit that applied it, by consumer", labelNames: ["consumer"] as const, buckets: LATENCY_BUCKETS, registers: [registry] });
  const published = outbox ? new Counter({ name: "orderflow_outbox_published_total", help: "Outbox events published and acknowledged by JetStream", registers: [registry] }) : undefined;
  const failures = outbox ? new Counter({ name: "orderflow_outbox_publish_failures_total", help: "Outbox publishes that failed (the row stays and is published again)", registers: [registry] }) : undefined;
  return {
    registry,
    observeRequest(method, route, status, seconds) {
      requests.inc({ method, route, status: String(status) });
      duration.observe({ method, route }, seconds);
    },
    countEvents: (consumer, outcome, n = 1) => void (n > 0 && events.inc({ consumer, outcome }, n)),
    eventLatency(consumer) {
      const labels = { consumer };
      return (seconds) => latency.observe(labels, seconds);
    },
    countPublished: (n) => void (n > 0 && published?.inc(n)),
    countPublishFailures: (n) => void (n > 0 && failures?.inc(n)),
    gaugeOnScrape(name, help, labelNames, read) {
      new ScrapeGauge({
        name,
        help,
        labelNames: [...labelNames],
        registers: [registry],
        async collect() {
          this.reset();
          // A dependency that cannot answer (or hangs, or is not connected yet) leaves the gauge
          // out of the scrape rather than failing it.
          const values = await within(read(), 2000).catch(() => undefined);
          (this as ScrapeGauge).unknown = values === undefined;
          for (const v of values ?? []) this.set(v.labels as Record<string, string>, v.value);
        },
      });
    },
    text: () => registry.metrics(),
  };
}

/**
 * A gauge that can say nothing. prom-client gives a gauge without labels a value of 0 even once
 * reset, so a DLQ that could not be counted (NATS down, or not reached since start) read as an
 * empty one: an alert on its growth went quiet for the outage. A read that fails or answers
 * undefined now leaves its samples out.
 */
class ScrapeGauge extends Gauge<string> {
  unknown = false;
  override async get() {
    const metric = await super.get();
    return this.unknown ? { ...metric, values: [] } : metric;
  }
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * GET /metrics on a port of its own: Prometheus scrapes the pod there, while the service's own
 * port, routed by the Ingress (the event log's `/` takes every path), never exposes it.
 */
export function startMetricsServer(metrics: Metrics, port: number, hostname = "0.0.0.0"): Promise<MetricsServer> {
  return new Promise((resolve, reject) => {
    const server = createServer((req, res) => {
      const path = (req.url ?? "").split("?")[0];
      if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
        res.writeHead(404, { "content-type": "text/plain" }).end("only GET /metrics here\n");
        return;
      }
      metrics.text().then(
        (body) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(req.method === "HEAD" ? undefined : body),
        (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${(err as Error).message}\n`),
      );
    });
    server.once("error", (err: NodeJS.ErrnoException) => reject(err.code === "EADDRINUSE" ? new StartupError(`metrics port ${port} on ${hostname} is already in use (by another process, or this one's PORT); set METRICS_PORT to a free one (0 turns metrics off)`, { cause: err }) : err));
    server.listen(port, hostname, () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((done) => server.close(() => done()).closeAllConnections()),
      }),
    );
  });
}
