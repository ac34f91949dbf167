/**
 * Limits on internal messages (issue 9, part 6), in memory: internal records obey the public key
 * and value limits, read keys are distinct, ids and targets are bounded, and answers are bounded
 * in bytes (a long kv/read answer comes in parts, which PeerClient.read puts together).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

const T = () => Date.now();
const wire = (k: string, v: string) => ({ k, v, t: T(), c: 0, n: "mem:8081" });

let c: MemoryCluster;
beforeAll(async () => {
  // One partition, so that every key is in partition 0; small limits, so answers fill up fast.
  c = await memoryCluster(3, [
    "--partitions",
    "1",
    "--max-key-bytes",
    "16",
    "--max-value-bytes",
    "600",
    "--batch-bytes",
    "1024",
  ]);
});
afterAll(() => c.stop());

async function post(path: string, body: unknown, i = 0) {
  const res = await c.nodes[i]!.app.request(`/internal/v1${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe("internal records obey the public limits", () => {
  const cases: [string, ReturnType<typeof wire>, number, RegExp][] = [
    [
      "a key over --max-key-bytes",
      wire("k".repeat(17), "v"),
      400,
      /key is 17 bytes; the limit is 16/,
    ],
    ["a key over the limit in UTF-8 bytes", wire("é".repeat(9), "v"), 400, /key is 18 bytes/],
    ["the reserved key", wire("all-data", "v"), 400, /key 'all-data' is reserved/],
    ["an empty key", wire("", "v"), 400, /invalid body at records.1.k/],
    [
      "a value over --max-value-bytes",
      wire("big", "x".repeat(601)),
      413,
      /value of key 'big' is 601 bytes; the limit is 600/,
    ],
  ];
  for (const [name, bad, status, message] of cases) {
    for (const route of ["/kv/write", "/hints"]) {
      test(`${route}: ${name} is a ${status}; nothing of the request is stored`, async () => {
        const body = route === "/kv/write"
          ? { to: "mem:8080", records: [wire("fine", "ok"), bad] }
          : { target: "mem:8082", records: [wire("fine", "ok"), bad] };
        const hintsBefore = c.nodes[0]!.hints.count;
        const r = await post(route, body);
        expect(r.status).toBe(status);
        expect(r.body.error.errorMessage).toMatch(message);
        expect(c.nodes[0]!.store.get("fine")).toBeUndefined();
        expect(c.nodes[0]!.hints.count).toBe(hintsBefore);
      });
    }
  }

  test("at the limits exactly, both are taken", async () => {
    const r = await post("/kv/write", {
      to: "mem:8080",
      records: [wire("k".repeat(16), "x".repeat(600))],
    });
    expect(r.status).toBe(200);
    expect(c.nodes[0]!.store.get("k".repeat(16))?.value).toHaveLength(600);
  });
});

describe("bounded ids, targets and read keys", () => {
  test("kv/read: a key over the largest key limit, or the same key twice, is a 400", async () => {
    expect((await post("/kv/read", { to: "mem:8080", keys: ["k".repeat(65537)] })).status)
      .toBe(400);
    // Over this member's --max-key-bytes (16), a limit for writes: read all the same (issue 16,
    // point 17: another member, with a larger limit, may have stored it).
    expect((await post("/kv/read", { to: "mem:8080", keys: ["k".repeat(17)] })).status).toBe(200);
    const twice = await post("/kv/read", { to: "mem:8080", keys: ["a", "b", "a"] });
    expect(twice.status).toBe(400);
    expect(twice.body.error.errorMessage).toContain("key 'a' is asked for twice");
  });

  test("hint targets, move senders and member ids: at most 256 characters", async () => {
    const long = "m".repeat(257);
    expect((await post("/hints", { target: long, records: [] })).status).toBe(400);
    expect((await post("/rebalance/done", { partition: 0, from: long })).status).toBe(400);
    expect((await post("/kv/write", { to: long, records: [] })).status).toBe(400);
    expect(
      (await post("/ae/versions", {
        partition: 0,
        buckets: [0],
        limit: 1,
        after: "k".repeat(70_000),
      })).status,
    ).toBe(400);
  });

  test("the coordinator reads a key asked for by many clients at once in one distinct-key batch", async () => {
    const app = c.nodes[1]!.app;
    expect((await app.request("/kv/same?consistency=all", { method: "PUT", body: "v" })).status)
      .toBe(200);
    const all = await Promise.all(
      Array.from({ length: 8 }, () => app.request("/kv/same?consistency=all")),
    );
    expect(all.map((r) => r.status)).toEqual(Array(8).fill(200));
  });
});

describe("answers are bounded in bytes", () => {
  // Budget: --max-value-bytes + --batch-bytes = 1624 units of keys and values per answer.
  const keys = Array.from({ length: 10 }, (_, i) => `r${i}`);
  beforeAll(async () => {
    const r = await post("/kv/write", {
      to: "mem:8080",
      records: keys.map((k) => wire(k, "v".repeat(500))),
    });
    expect(r.status).toBe(200);
  });

  test("kv/read answers the first keys that fit and says partial; PeerClient.read gets the rest", async () => {
    const raw = await post("/kv/read", { to: "mem:8080", keys: [...keys, "missing"] });
    expect(raw.status).toBe(200);
    expect(raw.body.partial).toBe(true);
    expect(raw.body.records).toHaveLength(3); // 3 × 502 ≤ 1624 < 4 × 502
    expect(raw.body.held).toHaveLength(3);
    const whole = await c.peers.read(
      "mem:8080",
      { to: "mem:8080", keys: [...keys, "missing"] },
      1000,
    );
    expect(whole.partial).toBeUndefined();
    expect(whole.records.map((r) => r?.k ?? null)).toEqual([...keys, null]);
    expect(whole.held).toHaveLength(11);
  });

  test("a single record larger than the budget still comes back, alone", async () => {
    await post("/kv/write", {
      to: "mem:8080",
      records: [wire("long-key-1234567", "x".repeat(600))],
    });
    const raw = await post("/kv/read", { to: "mem:8080", keys: ["long-key-1234567", "r0"] });
    expect(raw.body.records).toHaveLength(2); // 616 + 502 ≤ 1624
    const one = await post("/kv/read", {
      to: "mem:8080",
      keys: ["r1", "r2", "r3", "long-key-1234567"],
    });
    expect(one.body.records).toHaveLength(3);
    expect(one.body.partial).toBe(true);
  });

  test("ae/versions stops at the byte budget and says truncated; paging with `after` goes on", async () => {
    // 40 more small records: about 75 units each in a listing, over 1624 in all.
    const more = Array.from({ length: 40 }, (_, i) => wire(`s${String(i).padStart(2, "0")}`, "v"));
    expect((await post("/kv/write", { to: "mem:8080", records: more })).status).toBe(200);
    const first = await post("/ae/versions", {
      partition: 0,
      buckets: Array.from({ length: 64 }, (_, i) => i),
      limit: 10_000,
    });
    expect(first.status).toBe(200);
    expect(first.body.truncated).toBe(true);
    const n = first.body.entries.length;
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(30);
    const last = first.body.entries[n - 1].k;
    const next = await post("/ae/versions", {
      partition: 0,
      buckets: Array.from({ length: 64 }, (_, i) => i),
      limit: 10_000,
      after: last,
    });
    expect(next.body.entries[0].k > last).toBe(true);
  });
});
