/**
 * Bounded clocks on the internal routes (issue 8, findings 7 and 8), in memory with a manual
 * clock: a record far ahead of the member's clock, a counter past 32 bits, an over-long node id
 * or a 65,536th distinct node id is refused with 400 and leaves nothing stored or observed.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { KvRecord } from "../../src/core/record.ts";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster | undefined;
afterEach(() => c?.stop());

const T0 = 1_700_000_000_000;
const DAY_MS = 86_400_000;

type Wire = { k: string; v: string; t: number; c: number; n: string; d?: boolean };
const wire = (k: string, t: number, cnt = 0, n = "mem:8081", v = "x"): Wire => ({
  k,
  v,
  t,
  c: cnt,
  n,
});

async function post(c: MemoryCluster, i: number, path: string, body: unknown) {
  const res = await c.nodes[i]!.app.request(`/internal/v1${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Write a key through node `i` at `all`, then read back the version it was given. */
async function ownVersion(c: MemoryCluster, i: number, key: string) {
  const app = c.nodes[i]!.app;
  const put = await app.request(`/kv/${key}?consistency=all`, { method: "PUT", body: "v" });
  expect(put.status).toBe(200);
  const got = await (await app.request(`/kv/${key}`)).json();
  const m = /^(\d+)\.(\d+)@/.exec(got.version)!;
  return { wallMs: Number(m[1]), counter: Number(m[2]) };
}

describe("a record more than --max-clock-skew ahead", () => {
  const routes: readonly [name: string, body: (records: Wire[]) => unknown][] = [
    ["/kv/write", (records) => ({ to: "mem:8080", records })],
    ["/hints", (records) => ({ target: "mem:8082", records })],
  ];
  for (const [path, body] of routes) {
    test(`${path}: a record a day ahead is a 400 naming key, lead and limit; nothing stored or observed`, async () => {
      const t = T0;
      c = await memoryCluster(3, [], () => t);
      const node = c.nodes[0]!;
      const res = await post(
        c,
        0,
        path,
        body([wire("fine", t), wire("future", t + DAY_MS), wire("fine2", t + 1000)]),
      );
      expect(res.status).toBe(400);
      expect(res.body.status).toBe("FAILED");
      const msg: string = res.body.error.errorMessage;
      expect(msg).toContain('"future"');
      expect(msg).toContain(`${DAY_MS} ms ahead`);
      expect(msg).toContain("60000 ms");
      // Nothing of the request was kept: not the good records either.
      for (const k of ["fine", "future", "fine2"]) expect(node.store.get(k)).toBeUndefined();
      expect(node.hints.count).toBe(0);
      // Not observed: this member's next own version is at its own clock, not a day ahead.
      expect((await ownVersion(c, 0, "after")).wallMs).toBe(t);
      expect(node.status().clockSkewRefused).toBe(1);
    });
  }

  test("up to the limit is accepted (and observed); one ms more is refused", async () => {
    const t = T0;
    c = await memoryCluster(3, ["--max-clock-skew", "5s"], () => t);
    expect(
      (await post(c, 0, "/kv/write", { to: "mem:8080", records: [wire("edge", t + 5000)] })).status,
    ).toBe(200);
    expect(
      (await post(c, 0, "/kv/write", { to: "mem:8080", records: [wire("over", t + 5001)] })).status,
    ).toBe(400);
    expect(c.nodes[0]!.store.get("edge")?.value).toBe("x");
    expect(c.nodes[0]!.store.get("over")).toBeUndefined();
    expect((await ownVersion(c, 0, "after")).wallMs).toBe(t + 5000);
  });

  test("anti-entropy skips (and counts) pulled records beyond the bound", async () => {
    const t = T0;
    c = await memoryCluster(2, ["--partitions", "1"], () => t);
    const [a, b] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
    const rec = (key: string, wallMs: number): KvRecord => ({
      key,
      value: "b",
      version: { wallMs, counter: 0, nodeId: "forged" },
      tombstone: false,
    });
    b.store.apply(rec("near", t));
    b.store.apply(rec("far", t + DAY_MS)); // stored on b by a path without the check
    await a.antiEntropy.round();
    expect(a.store.get("near")?.value).toBe("b");
    expect(a.store.get("far")).toBeUndefined();
    expect(a.status().clockSkewRefused).toBe(1);
    expect((await ownVersion(c, 0, "after")).wallMs).toBe(t);
  });

  test("a tombstone stamped in the future (within the bound) is collected after the grace", async () => {
    let t = T0;
    c = await memoryCluster(1, ["--tombstone-grace", "10s"], () => t);
    const node = c.nodes[0]!;
    const tomb = { ...wire("ahead", t + 60_000, 0, "mem:9999", ""), d: true };
    expect((await post(c, 0, "/kv/write", { to: "mem:8080", records: [tomb] })).status).toBe(200);
    expect(node.store.get("ahead")?.tombstone).toBe(true);
    // A day-ahead tombstone (which would never be collected) does not get in at all.
    const far = { ...wire("far", t + DAY_MS, 0, "mem:9999", ""), d: true };
    expect((await post(c, 0, "/kv/write", { to: "mem:8080", records: [far] })).status).toBe(400);
    t += 60_000 + 10_000; // the tombstone's own time plus the grace: not yet older than it
    expect(node.collectTombstones()).toBe(0);
    t += 1;
    expect(node.collectTombstones()).toBe(1);
    expect(node.store.get("ahead")).toBeUndefined();
    expect(node.store.size).toBe(0);
  });
});

describe("version bounds on the wire", () => {
  const bad: readonly [name: string, record: Wire][] = [
    ["a counter of 2^53 - 1", wire("k", T0, 2 ** 53 - 1)],
    ["a counter of 2^53", wire("k", T0, 2 ** 53)],
    ["a counter of 2^32 (wraps in the store)", wire("k", T0, 2 ** 32)],
    ["a node id of 257 characters", wire("k", T0, 0, "x".repeat(257))],
    ["an empty node id", wire("k", T0, 0, "")],
    ["a wall time past 2^53", wire("k", 2 ** 53 + 2, 0)],
  ];
  for (const [name, record] of bad) {
    test(`${name}: /kv/write answers 400; later versions of this member are not poisoned`, async () => {
      const t = T0;
      c = await memoryCluster(3, [], () => t);
      const res = await post(c, 0, "/kv/write", {
        to: "mem:8080",
        records: [wire("ok", t), record],
      });
      expect(res.status).toBe(400);
      expect(res.body.status).toBe("FAILED");
      expect(c.nodes[0]!.store.get("ok")).toBeUndefined();
      expect((await post(c, 0, "/hints", { target: "mem:8082", records: [record] })).status)
        .toBe(400);
      // The member's own next write still gets a valid version every peer accepts.
      const v = await ownVersion(c, 0, "after");
      expect(v).toEqual({ wallMs: t, counter: 0 });
      for (const n of c.nodes) expect(n.store.get("after")?.version.wallMs).toBe(t);
    });
  }

  test("a counter at the maximum is accepted; at the bound this member moves its wall time 1 ms on", async () => {
    const t = T0;
    c = await memoryCluster(3, [], () => t);
    const max = 2 ** 32 - 1;
    expect((await post(c, 0, "/kv/write", { to: "mem:8080", records: [wire("k", t, max)] })).status)
      .toBe(200);
    expect(c.nodes[0]!.store.get("k")?.version.counter).toBe(max);
    // A write after it orders after it, on every replica: no wrap to a small counter.
    const put = await c.nodes[0]!.app.request("/kv/k?consistency=all", {
      method: "PUT",
      body: "newer",
    });
    expect(put.status).toBe(200);
    for (const n of c.nodes) {
      expect(n.store.get("k")?.value).toBe("newer");
      expect(n.store.get("k")?.version).toMatchObject({ wallMs: t + 1, counter: 1 });
    }
  });
});

describe("the node id table (finding 8)", () => {
  test("a 65,536th distinct node id is a 400, not a 500, and the store is unchanged", async () => {
    const t = T0;
    c = await memoryCluster(1, [], () => t);
    const node = c.nodes[0]!;
    for (let i = 0; i < 65_535; i++) {
      node.store.apply({
        key: `k${i % 100}`,
        value: `v${i}`,
        version: { wallMs: t - 100_000 + i, counter: 0, nodeId: `n${i}` },
        tombstone: false,
      });
    }
    const snapshot = () => ({
      size: node.store.size,
      digest: node.store.partitionDigest(node.store.partitionOf("k7")),
      k7: node.store.get("k7"),
      records: Array.from(
        { length: node.store.partitionCount },
        (_, p) => node.store.partitionRecords(p),
      ).flat(),
    });
    const before = snapshot();
    // A known id and a new one in one batch: refused whole, the known one is not applied either.
    const res = await post(c, 0, "/kv/write", {
      to: "mem:8080",
      records: [wire("k8", t, 0, "n1"), wire("k7", t, 0, "one-too-many")],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.errorMessage).toContain("too many distinct node ids");
    expect(snapshot()).toEqual(before);
    // Records from known ids still go in.
    expect(
      (await post(c, 0, "/kv/write", { to: "mem:8080", records: [wire("k7", t, 0, "n3")] })).status,
    ).toBe(200);
  });
});
