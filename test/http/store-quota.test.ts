/** --max-store-bytes: store accounting, and client writes refused with a 507 when full. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { KvRecord } from "../../src/core/record.ts";
import { DkvError } from "../../src/http/errors.ts";
import { Store } from "../../src/node/store.ts";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

const rec = (key: string, value: string, wallMs: number, tombstone = false): KvRecord => ({
  key,
  value,
  version: { wallMs, counter: 0, nodeId: "n" },
  tombstone,
});

describe("Store bytes", () => {
  test("counts UTF-8 bytes of keys and values through writes, deletes, drops and GC", () => {
    const s = new Store(4);
    s.apply(rec("ab", "xyz", 1));
    expect(s.bytes).toBe(5);
    s.apply(rec("ab", "é", 2)); // 2 bytes
    expect(s.bytes).toBe(4);
    s.apply(rec("ab", "", 3, true));
    expect(s.bytes).toBe(2);
    s.collectTombstones(10);
    expect(s.bytes).toBe(0);
    s.apply(rec("k", "v", 1));
    s.dropPartition(s.partitionOf("k"));
    expect(s.bytes).toBe(0);
    s.apply(rec("k", "vv", 1));
    s.resize(8);
    expect(s.bytes).toBe(3);
  });

  test("admitBytes refuses growth past the bound (a 507), and lets shrinking and deletes pass", () => {
    const s = new Store(4, 10);
    s.apply(rec("key", "1234567", 1)); // 10 bytes: full
    const refused = () => s.admitBytes([rec("k2", "x", 2)]);
    expect(refused).toThrow(DkvError);
    try {
      refused();
    } catch (e) {
      expect((e as DkvError).status).toBe(507);
      expect((e as DkvError).message).toBe(
        "store full: 10 of 10 bytes used (--max-store-bytes), and this write needs 3 more; " +
          "delete keys or raise the limit",
      );
    }
    expect(s.fullRefused).toBe(2);
    s.admitBytes([rec("key", "123", 2)]); // smaller: passes
    s.admitBytes([rec("new", "", 2, true)]); // a tombstone: passes
    expect(s.bytes).toBe(10); // admitBytes changes nothing
  });
});

describe("--max-store-bytes in a cluster (in memory)", () => {
  let c: MemoryCluster;
  beforeAll(async () => {
    c = await memoryCluster(3, ["--max-store-bytes", "100"]);
  });
  afterAll(() => c.stop());

  async function put(key: string, value: string) {
    const res = await c.nodes[0]!.app.request(`/kv/${key}`, { method: "PUT", body: value });
    return { status: res.status, body: await res.json() };
  }

  test("a write past the bound is a 507 FAILED JSON naming the limit; deletes still work", async () => {
    expect((await put("a", "x".repeat(60))).status).toBe(200);
    const full = await put("b", "y".repeat(60));
    expect(full.status).toBe(507);
    expect(full.body.status).toBe("FAILED");
    expect(full.body.error.errorSystemCode).toBe(507);
    expect(full.body.error.errorMessage).toContain("store full (--max-store-bytes)");
    expect(full.body.error.errorMessage).toContain("store full: 61 of 100 bytes used");
    // Nothing of it was kept anywhere.
    for (const n of c.nodes) expect(n.store.get("b")).toBeUndefined();
    // Deleting makes room.
    const del = await c.nodes[1]!.app.request("/kv/a", { method: "DELETE" });
    expect(del.status).toBe(200);
    expect((await put("b", "y".repeat(60))).status).toBe(200);
    const status = await (await c.nodes[0]!.app.request("/cluster/status")).json();
    const mine = status.members.find((m: { id: string }) => m.id === "mem:8080");
    expect(mine.storeBytes).toBe(62);
    expect(mine.storeFullRefused).toBeGreaterThanOrEqual(1);
  });
});
