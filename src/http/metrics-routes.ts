/** `GET /metrics`: the Prometheus text format (metrics.ts); a read token when tokens are on. */
import { Hono } from "hono";
import type { Metrics } from "./metrics.ts";

export function metricsRoutes(metrics: Metrics): Hono {
  const app = new Hono();
  app.get("/metrics", async (c) => {
    const text = await metrics.text();
    return c.body(text, 200, { "content-type": metrics.contentType });
  });
  return app;
}
