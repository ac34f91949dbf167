/**
 * Issue 16 ("the first ten minutes"), the points about the public API, in memory: every error
 * is FAILED JSON with a status that says what is wrong, and limits meant for writes never stop a
 * read.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { member, type MemoryCluster, memoryCluster, testConfig } from "./memory-cluster.ts";
import { DataNode } from "../../src/node/data-node.ts";
import { Orchestrator } from "../../src/orchestrator/orchestrator.ts";
import { silentLogger } from "../../src/log.ts";
import { realScheduler } from "../../src/platform/scheduler.ts";
import { createPeerClient, MemoryNetwork } from "../../src/transport/index.ts";

let c: MemoryCluster;
/** A node out of the ring, started with --max-key-bytes 5: it only coordinates. */
let small: DataNode;
beforeAll(async () => {
  c = await memoryCluster(3, ["--max-value-bytes", "64"]);
  small = c.newNode(8083, ["--max-value-bytes", "64", "--max-key-bytes", "5"]);
  c.nodes.push(small);
  c.setView({
    ...c.view,
    epoch: 2,
    members: [...c.view.members, { ...member("mem:8083"), inRing: false }],
  });
});
afterAll(() => c.stop());

interface Answer {
  status: number;
  headers: Headers;
  body: {
    status?: string;
    value?: string;
    error?: { errorMessage: string; errorSystemCode: number };
  };
}

async function call(
  app: DataNode["app"],
  method: string,
  path: string,
  body?: string,
): Promise<Answer> {
  const res = await app.request(path, { method, ...(body === undefined ? {} : { body }) });
  return { status: res.status, headers: res.headers, body: await res.json() as Answer["body"] };
}

function expectFailed(r: Answer, status: number, message: RegExp) {
  expect(r.status).toBe(status);
  expect(r.body.status).toBe("FAILED");
  expect(r.body.error?.errorSystemCode).toBe(status);
  expect(r.body.error?.errorMessage).toMatch(message);
}

describe("issue 16: the public API in memory", () => {
  test("point 2: /kv with no key is a 400 FAILED JSON for GET, PUT, POST and DELETE", async () => {
    for (const method of ["GET", "PUT", "POST", "DELETE"]) {
      for (const path of ["/kv", "/kv/"]) {
        const body = method === "PUT" || method === "POST" ? "v" : undefined;
        expectFailed(await call(c.nodes[0]!.app, method, path, body), 400, /must not be empty/);
      }
    }
  });

  test("point 12: an unknown query parameter is a 400 naming it and the accepted ones", async () => {
    const app = c.nodes[0]!.app;
    expect((await call(app, "PUT", "/kv/q1", "v")).status).toBe(200);
    const typo = await call(app, "GET", "/kv/q1?consistancy=all");
    expectFailed(typo, 400, /unknown query parameter 'consistancy'.*accepts consistency/);
    // ttl is a parameter now (issue 11), and a ttl without a unit is still a 400.
    expectFailed(
      await call(app, "PUT", "/kv/q1?ttl=5", "v"),
      400,
      /ttl must be a whole number with a unit/,
    );
    expectFailed(await call(app, "DELETE", "/kv/q1?force=1"), 400, /'force'/);
    // Nothing was deleted by the refused DELETE; the accepted parameter still works.
    expect((await call(app, "GET", "/kv/q1?consistency=all")).body.value).toBe("v");
  });

  test("point 13: PATCH (or any other method) on a key is a 405 with an Allow header", async () => {
    const app = c.nodes[0]!.app;
    for (const method of ["PATCH", "OPTIONS"]) {
      const r = await call(app, method, "/kv/x", method === "PATCH" ? "v" : undefined);
      expectFailed(r, 405, new RegExp(`${method} is not allowed here`));
      expect(r.headers.get("allow")).toBe("GET, HEAD, PUT, POST, DELETE");
    }
    const all = await call(app, "PUT", "/kv/all-data", "v");
    expectFailed(all, 400, /reserved/);
    const patchAll = await call(app, "PATCH", "/kv/all-data", "v");
    expectFailed(patchAll, 405, /PATCH is not allowed/);
    expect(patchAll.headers.get("allow")).toBe("GET, HEAD");
  });

  test("point 17: a node with a smaller --max-key-bytes reads and deletes longer keys others stored", async () => {
    const key = "longer-than-five";
    expect((await call(c.nodes[0]!.app, "PUT", `/kv/${key}`, "v1")).status).toBe(200);
    // Writing it through the small node is still refused: the limit is for writes.
    expectFailed(await call(small.app, "PUT", `/kv/${key}`, "v2"), 400, /--max-key-bytes/);
    const got = await call(small.app, "GET", `/kv/${key}`);
    expect(got.status).toBe(200);
    expect(got.body.value).toBe("v1");
    expect((await call(small.app, "DELETE", `/kv/${key}`)).status).toBe(200);
    expect((await call(c.nodes[1]!.app, "GET", `/kv/${key}`)).status).toBe(404);
    // Keys no member can store at all are still a 400.
    expectFailed(await call(small.app, "GET", `/kv/${"k".repeat(65537)}`), 400, /65536/);
  });

  test("point 17: the 413 names --max-value-bytes, as the key's 400 names --max-key-bytes", async () => {
    const r = await call(c.nodes[0]!.app, "PUT", "/kv/big", "x".repeat(65));
    expectFailed(r, 413, /the limit is 64 \(--max-value-bytes\)/);
  });

  test("point 3: request headers over 16 KiB are a 431 FAILED JSON", async () => {
    const res = await c.nodes[0]!.app.request("/kv/x", {
      headers: { "x-big": "a".repeat(20_000) },
    });
    expect(res.status).toBe(431);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = await res.json() as Answer["body"];
    expect(body.error?.errorMessage).toMatch(/request headers are \d+ bytes; the limit is 16384/);
    // A 20,000-byte key is a key, not a header problem: a GET is answered (no such key), a PUT is
    // the 400 naming --max-key-bytes.
    expectFailed(await call(c.nodes[0]!.app, "GET", `/kv/${"k".repeat(20_000)}`), 404, /not found/);
    expectFailed(
      await call(c.nodes[0]!.app, "PUT", `/kv/${"k".repeat(20_000)}`, "v"),
      400,
      /the limit is 1024 \(--max-key-bytes\)/,
    );
  });

  test("point 4: an orchestrator with a view but no nodes says so, not 'not joined'", async () => {
    const o = c.orchestrator;
    const lone = new Orchestrator(
      o.config,
      createPeerClient(new MemoryNetwork().fetch),
      silentLogger,
    );
    lone.useView({
      instance: "t",
      epoch: 1,
      replicationFactor: 3,
      partitions: 8,
      members: [member("mem:7000", "orchestrator")],
    });
    const r = await call(lone.app as DataNode["app"], "GET", "/kv/x");
    expectFailed(r, 503, /no data nodes in the ring \(view epoch 1: 0 node\(s\) known/);
    expect(r.body.error?.errorMessage).not.toContain("not joined");
    // Before any view, "not joined" is what is true.
    const fresh = new Orchestrator(
      o.config,
      createPeerClient(new MemoryNetwork().fetch),
      silentLogger,
    );
    expectFailed(await call(fresh.app as DataNode["app"], "GET", "/kv/x"), 503, /not joined/);
  });

  test("point 6: /health, /all-nodes and the gossip record agree on the incarnation", async () => {
    // A clock that moves on every reading: any two readings of it differ.
    let t = Date.now();
    const sched = { ...realScheduler, now: () => ++t };
    const config = testConfig([
      "--role",
      "node",
      "--host",
      "mem",
      "--port",
      "9000",
      "--join",
      "mem:1",
    ]);
    const node = new DataNode(
      config,
      createPeerClient(new MemoryNetwork().fetch),
      silentLogger,
      sched,
    );
    const health = await node.app.request("/health");
    const inc = ((await health.json()) as { incarnation: number }).incarnation;
    expect(inc).toBe(node.agent.swim.self.incarnation);
    const all = await node.app.request("/all-nodes");
    const members = ((await all.json()) as { allNodes: { id: string; incarnation: number }[] })
      .allNodes;
    expect(members.find((m) => m.id === "mem:9000")?.incarnation).toBe(inc);
    node.stop();
  });

  test("point 14: a 503 write is 'not confirmed', not 'not applied', and the README says so", async () => {
    const app = c.nodes[0]!.app;
    expect((await call(app, "PUT", "/kv/unconfirmed?consistency=all", "v")).status).toBe(200);
    // One replica cannot be written: DELETE at `all` is a 503 ...
    c.net.drop = (address, path) => address === "mem:8082" && path === "/internal/v1/kv/write";
    try {
      const del = await call(app, "DELETE", "/kv/unconfirmed?consistency=all");
      expectFailed(del, 503, /only 2 of 3 replicas acknowledged/);
    } finally {
      c.net.drop = () => false;
    }
    // ... and yet applied on the replicas that answered.
    const dump = await (await c.nodes[0]!.app.request("/kv/all-data")).json();
    expect(dump).not.toHaveProperty("unconfirmed");
    const readme = await Bun.file(new URL("../../README.md", import.meta.url)).text();
    expect(readme).toContain('**A 503 on a write means "not confirmed", not "not applied"**');
    expect(readme).toContain("To retry safely");
  });
});
