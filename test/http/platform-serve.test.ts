/** The platform server: what reaches the client when the handler itself throws. */
import { afterAll, expect, test } from "bun:test";
import { serve, type Server } from "../../src/platform/index.ts";
import { freePort } from "../support/cluster.ts";

const servers: Server[] = [];
afterAll(() => servers.forEach((s) => s.stop()));

test("a handler that throws gets FAILED JSON 500, not the runtime's HTML page", async () => {
  const port = freePort();
  servers.push(serve(() => {
    throw new Error("planted");
  }, { host: "127.0.0.1", port, maxBodyBytes: 1024, idleTimeoutMs: 30_000 }));
  const res = await fetch(`http://127.0.0.1:${port}/kv/x`);
  expect(res.status).toBe(500);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  expect(await res.json()).toEqual({
    status: "FAILED",
    error: { errorMessage: "internal error", errorSystemCode: 500 },
  });
});
