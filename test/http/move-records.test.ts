/**
 * POST /internal/v1/rebalance/records (a move frame), in memory: records merge by version as
 * kv/write merges them; the request is checked whole (member, frame, limits, clock) before any
 * record is applied; with a cluster secret it must be signed, and a real move over it works.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { encodeMoveFrame } from "../../src/core/move-frame.ts";
import type { KvRecord } from "../../src/core/record.ts";
import { Ring } from "../../src/core/view.ts";
import type { DataNode } from "../../src/node/data-node.ts";
import { createPeerClient } from "../../src/transport/index.ts";
import { member, memberAuth, type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster | undefined;
afterEach(() => c?.stop());

const rec = (key: string, value: string, wallMs: number, nodeId = "mem:8081"): KvRecord => ({
  key,
  value,
  version: { wallMs, counter: 0, nodeId },
  tombstone: false,
});

async function post(frame: Uint8Array, i = 0) {
  const res = await c!.nodes[i]!.app.request("/internal/v1/rebalance/records", {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: frame as Uint8Array<ArrayBuffer>,
  });
  return { status: res.status, body: await res.json() };
}

/** 300 keys `${prefix}N` written through node 0 (each its own value), then a node for mem:8090. */
async function loadThenNewcomer(prefix: string) {
  const keys = Array.from({ length: 300 }, (_, i) => `${prefix}${i}`);
  for (const k of keys) {
    const res = await c!.nodes[0]!.app.request(`/kv/${k}`, { method: "PUT", body: k });
    expect(res.status).toBe(200);
  }
  const newcomer = c!.newNode(8090, [
    "--replication-factor",
    "1",
    "--view-push-interval",
    "100ms",
  ]);
  return { keys, newcomer };
}

/** Hand every member a view with `newcomer` in it; the keys of `keys` it now owns (over 10). */
function joinNewcomer(newcomer: DataNode, keys: readonly string[]): string[] {
  c!.nodes.push(newcomer);
  const view = { ...c!.view, epoch: 2, members: [...c!.view.members, member("mem:8090")] };
  c!.setView(view);
  const ring = new Ring(view);
  const moved = keys.filter((k) => ring.replicas(k)[0]!.id === "mem:8090");
  expect(moved.length).toBeGreaterThan(10);
  return moved;
}

describe("rebalance/records", () => {
  test("records merge by version: an older one does not replace a newer one", async () => {
    c = await memoryCluster(3);
    const store = c.nodes[0]!.store;
    const t = Date.now();
    store.apply(rec("kept", "newer", t + 10));
    const r = await post(encodeMoveFrame("mem:8080", [
      rec("kept", "older", t),
      rec("fresh", "moved", t),
      { ...rec("gone", "", t + 1), tombstone: true },
    ]));
    expect(r).toEqual({ status: 200, body: { applied: 3 } });
    expect(store.get("kept")?.value).toBe("newer");
    expect(store.get("fresh")).toEqual(rec("fresh", "moved", t));
    expect(store.get("gone")?.tombstone).toBe(true);
    // Sent again: the same state (idempotent).
    expect((await post(encodeMoveFrame("mem:8080", [rec("fresh", "moved", t)]))).status).toBe(200);
    expect(store.get("fresh")).toEqual(rec("fresh", "moved", t));
  });

  test("a refused frame stores nothing of its records", async () => {
    c = await memoryCluster(3, ["--max-key-bytes", "16", "--max-value-bytes", "600"]);
    const store = c.nodes[0]!.store;
    const t = Date.now();
    const ok = rec("fine", "ok", t);
    const frame = encodeMoveFrame("mem:8080", [ok, rec("k".repeat(17), "v", t)]);
    const cases: [string, Uint8Array, number, RegExp][] = [
      ["meant for another member", encodeMoveFrame("mem:8081", [ok]), 409, /not mem:8081/],
      ["truncated", frame.subarray(0, frame.length - 1), 400, /invalid move frame: record 1/],
      ["a key over --max-key-bytes", frame, 400, /key is 17 bytes; the limit is 16/],
      [
        "a value over --max-value-bytes",
        encodeMoveFrame("mem:8080", [ok, rec("big", "x".repeat(601), t)]),
        413,
        /value of key 'big' is 601 bytes; the limit is 600/,
      ],
      [
        "a version too far ahead of the clock",
        encodeMoveFrame("mem:8080", [ok, rec("ahead", "v", t + 3_600_000)]),
        400,
        /ahead/,
      ],
      ["not a frame at all", new TextEncoder().encode('{"to":"mem:8080"}'), 400, /magic/],
    ];
    for (const [name, body, status, message] of cases) {
      const r = await post(body);
      expect({ name, status: r.status }).toEqual({ name, status });
      expect(r.body.error.errorMessage).toMatch(message);
      expect({ name, stored: store.get("fine") }).toEqual({ name, stored: undefined });
    }
  });

  test("over the internal body limit: 413, unread", async () => {
    c = await memoryCluster(3, ["--max-value-bytes", "1024", "--batch-bytes", "1024"]);
    // 7 × (1024 + 1024) + 1 MiB is the limit; a frame of 2 MB is over it.
    const t = Date.now();
    const records = Array.from({ length: 2000 }, (_, i) => rec(`k${i}`, "x".repeat(1000), t));
    const r = await post(encodeMoveFrame("mem:8080", records));
    expect(r.status).toBe(413);
    expect(c.nodes[0]!.store.size).toBe(0);
  });

  test("with a cluster secret: unsigned is a 401; a join moves its partitions over it", async () => {
    const secret = new TextEncoder().encode("a-cluster-secret-of-enough-bytes!");
    c = await memoryCluster(
      2,
      ["--replication-factor", "1", "--view-push-interval", "100ms"],
      Date.now,
      {
        secrets: [secret],
      },
    );
    const t = Date.now();
    const unsigned = await post(encodeMoveFrame("mem:8080", [rec("u", "v", t)]));
    expect(unsigned.status).toBe(401);
    const signed = createPeerClient(c.net.fetch, undefined, {
      auth: memberAuth("mem:8081", [secret], c.nodes[1]!.config),
    });
    expect(
      await signed.moveRecords("mem:8080", encodeMoveFrame("mem:8080", [rec("s", "v", t)]), 1000),
    )
      .toEqual({ applied: 1 });
    expect(c.nodes[0]!.store.get("s")?.value).toBe("v");

    // A newcomer takes partitions from both: they arrive over signed move frames.
    const { keys, newcomer } = await loadThenNewcomer("j");
    const moved = joinNewcomer(newcomer, keys);
    const deadline = Date.now() + 10_000;
    // Done once every key arrived and every mover said so (after its wait before the drop).
    const done = () =>
      moved.every((k) => newcomer.store.get(k) !== undefined) &&
      newcomer.rebalancer.movingIn.size === 0;
    while (!done() && Date.now() < deadline) {
      await Bun.sleep(20);
    }
    expect(moved.filter((k) => newcomer.store.get(k)?.value !== k)).toEqual([]);
    expect(newcomer.rebalancer.movingIn.size).toBe(0);
  });

  test("a target that answers 404 to a move frame (an older member) gets kv/write instead", async () => {
    c = await memoryCluster(2, ["--replication-factor", "1", "--view-push-interval", "100ms"]);
    const { keys, newcomer } = await loadThenNewcomer("o");
    // As a member from before move frames: no such route.
    const frames: string[] = [];
    c.net.servers.set("mem:8090", {
      fetch: (req: Request) => {
        if (new URL(req.url).pathname !== "/internal/v1/rebalance/records") {
          return newcomer.app.fetch(req);
        }
        frames.push(req.url);
        return Response.json(
          { status: "FAILED", error: { errorMessage: "not found", errorSystemCode: 404 } },
          { status: 404 },
        );
      },
    });
    const moved = joinNewcomer(newcomer, keys);
    const deadline = Date.now() + 5_000;
    while (moved.some((k) => newcomer.store.get(k) === undefined) && Date.now() < deadline) {
      await Bun.sleep(20);
    }
    expect(moved.filter((k) => newcomer.store.get(k)?.value !== k)).toEqual([]);
    expect(frames.length).toBeGreaterThan(0); // a frame was tried first
  });
});
