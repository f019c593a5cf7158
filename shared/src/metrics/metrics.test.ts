import { describe, expect, it } from "vitest";
import { createMetrics } from "./index.js";

const samples = (text: string, name: string) => text.split("\n").filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));

describe("gauges read when scraped", () => {
  it("leave a gauge out of the scrape when its source cannot answer, labels or none, instead of reporting 0", async () => {
    const metrics = createMetrics({ service: "t", defaultMetrics: false });
    let up = true;
    const read = async () => {
      if (!up) throw new Error("NATS down");
      return [{ labels: {}, value: 7 }];
    };
    metrics.gaugeOnScrape("t_plain", "no labels", [], read);
    metrics.gaugeOnScrape("t_labelled", "labels", ["consumer"], async () => (await read()).map((v) => ({ ...v, labels: { consumer: "c" } })));
    expect(samples(await metrics.text(), "t_plain")).toEqual(['t_plain{service="t"} 7']);
    expect(samples(await metrics.text(), "t_labelled")).toEqual(['t_labelled{consumer="c",service="t"} 7']);
    up = false;
    const down = await metrics.text();
    expect(samples(down, "t_plain")).toEqual([]);
    expect(samples(down, "t_labelled")).toEqual([]);
    expect(down).toContain("# TYPE t_plain gauge"); // the rest of the scrape stands
    up = true;
    expect(samples(await metrics.text(), "t_plain")).toEqual(['t_plain{service="t"} 7']);
    // A source that is not there yet (a service started while NATS is down) says "unknown", not 0.
    metrics.gaugeOnScrape("t_unknown", "no source yet", [], async () => undefined);
    expect(samples(await metrics.text(), "t_unknown")).toEqual([]);
  });
});
