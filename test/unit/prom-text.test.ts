/**
 * The request-path metric writer (src/http/prom-text.ts), read back with a real Prometheus
 * text-format parser (parse-prometheus-text-format).
 */
import { describe, expect, test } from "bun:test";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { LabeledCounter, LabeledHistogram } from "../../src/http/prom-text.ts";
import { routeLabel } from "../../src/http/metrics.ts";

describe("prom-text", () => {
  test("a labeled counter: one sample per label set, awkward label values escaped", () => {
    const c = new LabeledCounter("x_total", "help with \\ and\nnewline", ["route", "status"]);
    c.series(["/kv/{key}", "200"]).value += 3;
    c.series(['a "quoted" \\ value\nline', "404"]).value++;
    const [fam] = parsePrometheusTextFormat(c.text());
    expect(fam!.name).toBe("x_total");
    expect(fam!.type).toBe("COUNTER");
    expect(fam!.help).toBe("help with \\ and\nnewline");
    expect(fam!.metrics).toEqual([
      { value: "3", labels: { route: "/kv/{key}", status: "200" } },
      { value: "1", labels: { route: 'a "quoted" \\ value\nline', status: "404" } },
    ]);
  });

  test("a histogram: cumulative buckets ending at +Inf = count, and the sum", () => {
    const h = new LabeledHistogram("y_seconds", "y", [], [0.01, 0.1, 1]);
    const s = h.series([]);
    for (const v of [0.005, 0.01, 0.05, 0.5, 7]) h.observe(s, v);
    const [fam] = parsePrometheusTextFormat(h.text());
    expect(fam!.type).toBe("HISTOGRAM");
    expect(fam!.metrics).toEqual([{
      buckets: { "0.01": "2", "0.1": "3", "1": "4", "+Inf": "5" },
      count: "5",
      sum: String(0.005 + 0.01 + 0.05 + 0.5 + 7),
    }]);
  });

  test("buckets must ascend", () => {
    expect(() => new LabeledHistogram("z", "z", [], [1, 1])).toThrow(/ascend/);
  });

  test("route labels are a bounded set", () => {
    expect(routeLabel("/kv/anything/at/all")).toBe("/kv/{key}");
    expect(routeLabel("/kv/all-data")).toBe("/kv/all-data");
    expect(routeLabel("/all-nodes/k")).toBe("/all-nodes/{key}");
    expect(routeLabel("/internal/v1/kv/write")).toBe("/internal/v1/kv/write");
    expect(routeLabel("/ui/app.js")).toBe("/ui");
    expect(routeLabel("/no/such/route")).toBe("other");
    expect(routeLabel("/internal/v1/made-up")).toBe("other");
  });
});
