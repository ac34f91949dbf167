/**
 * The public API through `app.request()`, with members wired by the in-memory transport: routes,
 * status codes, body shapes and quorum behaviour, without sockets.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { HttpResult } from "../support/cluster.ts";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster;
beforeAll(async () => {
  c = await memoryCluster(3, ["--max-value-bytes", "64"]);
});
afterAll(() => c.stop());

async function call(
  app: { request: (p: string, i?: RequestInit) => Response | Promise<Response> },
  method: string,
  path: string,
  body?: string,
): Promise<HttpResult> {
  const res = await app.request(path, { method, body });
  return { status: res.status, body: await res.json() };
}

describe("public API in memory", () => {
  test("set on one node, get from every member; version is an HLC string", async () => {
    const put = await call(c.nodes[0]!.app, "POST", "/kv/best_year", "2001");
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ status: "SUCCESS", key: "best_year", value: "2001" });
    expect(put.body.version).toMatch(/^\d+\.\d+@mem:8080$/);
    for (const app of [c.orchestrator.app, ...c.nodes.map((n) => n.app)]) {
      expect(await call(app, "GET", "/kv/best_year")).toEqual({ status: 200, body: put.body });
    }
  });

  test("with N=3 on 3 nodes, every node stores the key; the orchestrator stores nothing", async () => {
    await call(c.nodes[1]!.app, "PUT", "/kv/everywhere?consistency=all", "x");
    for (const n of c.nodes) {
      expect((await call(n.app, "GET", "/kv/all-data")).body).toHaveProperty("everywhere", "x");
    }
    expect((await call(c.orchestrator.app, "GET", "/kv/all-data")).body).toEqual({});
  });

  test("/all-nodes and /all-nodes/{key} use the original shape", async () => {
    const all = await call(c.nodes[2]!.app, "GET", "/all-nodes");
    expect(all.status).toBe(200);
    expect(all.body.allNodes).toHaveLength(4);
    expect(all.body.allNodes[0]).toMatchObject({
      ip: "mem",
      port: 7000,
      role: "orchestrator",
      orchestrator: true,
      status: "UP",
    });
    const replicas = await call(c.orchestrator.app, "GET", "/all-nodes/best_year");
    expect(replicas.body.allNodes.map((m: { role: string }) => m.role)).toEqual([
      "node",
      "node",
      "node",
    ]);
    expect(new Set(replicas.body.allNodes.map((m: { id: string }) => m.id)).size).toBe(3);
  });

  test("errors are FAILED JSON with errorMessage and errorSystemCode", async () => {
    const app = c.nodes[0]!.app;
    const cases: [string, string, string | undefined, number, RegExp][] = [
      ["GET", "/kv/missing", undefined, 404, /not found/],
      ["POST", "/kv/big", "x".repeat(65), 413, /65 bytes; the limit is 64/],
      ["POST", "/kv/", "v", 400, /empty/],
      ["POST", "/kv/all-data", "v", 400, /reserved/],
      ["GET", "/kv/%ZZ", undefined, 400, /percent-encoded/],
      ["GET", "/kv/a?consistency=two", undefined, 400, /consistency/],
      ["PATCH", "/kv/a", "v", 405, /PATCH is not allowed here; use GET, HEAD, PUT, POST, DELETE/],
      ["POST", "/internal/v1/kv/write", "{not json", 400, /not valid JSON/],
      [
        "POST",
        "/internal/v1/kv/write",
        JSON.stringify({ to: "mem:8080", records: [{ k: 1 }] }),
        400,
        /invalid body at records\.0\.k/,
      ],
      [
        "POST",
        "/internal/v1/kv/write",
        JSON.stringify({ to: "mem:9999", records: [] }),
        409,
        /this is member mem:8080, not mem:9999/,
      ],
      [
        "POST",
        "/internal/v1/kv/read",
        JSON.stringify({ to: "an-old-member", keys: ["a"] }),
        409,
        /not an-old-member/,
      ],
      [
        "POST",
        "/internal/v1/kv/read",
        JSON.stringify({ to: "mem:8080", keys: ["a"], sets: [-2] }),
        400,
        /invalid body at sets\.0/,
      ],
      [
        "POST",
        "/internal/v1/kv/write",
        JSON.stringify({ to: "mem:8080", records: [], sets: [2 ** 32] }),
        400,
        /invalid body at sets\.0/,
      ],
      ["POST", "/internal/v1/register", JSON.stringify({ self: {} }), 404, /no route/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const r = await call(app, method, path, body);
      expect({ path, status: r.status }).toEqual({ path, status });
      expect(r.body.status).toBe("FAILED");
      expect(r.body.error.errorSystemCode).toBe(status);
      expect(r.body.error.errorMessage).toMatch(message);
    }
    // The orchestrator validates gossip messages.
    const bad = await call(
      c.orchestrator.app,
      "POST",
      "/internal/v1/gossip",
      JSON.stringify({ msg: { type: "ping", from: "x" } }),
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.errorMessage).toMatch(/invalid body at msg/);
  });

  test("quorum: one replica down still reads and writes; all fails with 503 naming how many acked", async () => {
    await call(c.nodes[0]!.app, "POST", "/kv/q", "before");
    c.net.down.add("mem:8082");
    try {
      expect((await call(c.nodes[0]!.app, "POST", "/kv/q", "after")).status).toBe(200);
      expect((await call(c.nodes[1]!.app, "GET", "/kv/q")).body.value).toBe("after");
      const all = await call(c.nodes[0]!.app, "POST", "/kv/q?consistency=all", "v");
      expect(all.status).toBe(503);
      expect(all.body.error.errorMessage).toMatch(/only 2 of 3 replicas acknowledged; all needs 3/);
      expect(all.body.error.errorMessage).toContain("mem:8082");
      const one = await call(c.nodes[0]!.app, "GET", "/kv/q?consistency=one");
      expect(one.status).toBe(200);
      c.net.down.add("mem:8081");
      const quorum = await call(c.nodes[0]!.app, "GET", "/kv/q");
      expect(quorum.status).toBe(503);
      expect(quorum.body.error.errorMessage).toMatch(
        /only 1 of 3 replicas answered; quorum needs 2/,
      );
    } finally {
      c.net.down.clear();
    }
  });

  test("delete writes a tombstone: 404 afterwards, and a second delete is 404", async () => {
    await call(c.nodes[0]!.app, "POST", "/kv/gone", "v");
    expect(await call(c.nodes[1]!.app, "DELETE", "/kv/gone")).toEqual({
      status: 200,
      body: { status: "SUCCESS", key: "gone" },
    });
    expect((await call(c.nodes[2]!.app, "GET", "/kv/gone")).status).toBe(404);
    expect((await call(c.nodes[2]!.app, "DELETE", "/kv/gone")).status).toBe(404);
    for (const n of c.nodes) {
      expect((await call(n.app, "GET", "/kv/all-data")).body).not.toHaveProperty("gone");
    }
    // Tombstones are kept (so an older write arriving late cannot resurrect the key).
    expect(c.nodes[0]!.store.get("gone")?.tombstone).toBe(true);
  });

  test("a late, older write loses to a newer one on a replica (last writer wins)", async () => {
    await call(c.nodes[0]!.app, "POST", "/kv/lww?consistency=all", "new");
    const stored = c.nodes[1]!.store.get("lww")!;
    const stale = { k: "lww", v: "old", t: stored.version.wallMs - 1000, c: 0, n: "zzz" };
    const r = await call(
      c.nodes[1]!.app,
      "POST",
      "/internal/v1/kv/write",
      JSON.stringify({ to: c.nodes[1]!.config.nodeId, records: [stale] }),
    );
    // The replica keeps the newer record and says which version beat the incoming one.
    const v = stored.version;
    expect(r).toEqual({
      status: 200,
      body: { hadLive: [true], newer: [{ t: v.wallMs, c: v.counter, n: v.nodeId }] },
    });
    expect((await call(c.nodes[2]!.app, "GET", "/kv/lww")).body.value).toBe("new");
  });

  test("a coordinator whose clock is behind re-issues its write above the newer version", async () => {
    // A write from node 0 stamped 30 s in the future (a skewed clock elsewhere, within the bound).
    const future = Date.now() + 30_000; // within --max-clock-skew (60s)
    // Put it straight into the stores, so no coordinator's clock has seen it.
    const ahead = {
      key: "skew",
      value: "from the future",
      tombstone: false,
      version: { wallMs: future, counter: 0, nodeId: "mem:8080" },
    };
    for (const n of c.nodes) n.store.apply(ahead);
    // A client write that starts after it must still win.
    const put = await call(c.nodes[2]!.app, "POST", "/kv/skew", "later");
    expect(put.status).toBe(200);
    expect(put.body.version).toMatch(new RegExp(`^${future}\\.[1-9]\\d*@mem:8082$`));
    expect((await call(c.nodes[1]!.app, "GET", "/kv/skew")).body.value).toBe("later");
  });
});
