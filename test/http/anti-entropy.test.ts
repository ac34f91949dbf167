/** Anti-entropy between in-memory replicas: exactly the differing keys move, in pages. */
import { afterEach, expect, test } from "bun:test";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster | undefined;
afterEach(() => c?.stop());

const rec = (key: string, value: string, wallMs: number) => ({
  key,
  value,
  version: { wallMs, counter: 0, nodeId: "test" },
  tombstone: false,
});

test("one round syncs both ways, paging past --anti-entropy-keys", async () => {
  c = await memoryCluster(2, [
    "--partitions",
    "1",
    "--anti-entropy-keys",
    "10",
    "--batch-keys",
    "7",
  ]);
  const [a, b] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
  for (let i = 0; i < 300; i++) a.store.apply(rec(`only-a-${i}`, "a", 1000));
  for (let i = 0; i < 200; i++) b.store.apply(rec(`only-b-${i}`, "b", 1000));
  for (let i = 0; i < 100; i++) {
    a.store.apply(rec(`both-${i}`, "old", 1000));
    b.store.apply(rec(`both-${i}`, "new", 2000)); // b is newer
  }
  expect(a.store.partitionDigest(0)).not.toEqual(b.store.partitionDigest(0));
  await a.antiEntropy.round();
  expect(a.store.partitionDigest(0)).toEqual(b.store.partitionDigest(0));
  expect(a.store.size).toBe(600);
  expect(b.store.get("only-a-299")?.value).toBe("a");
  expect(a.store.get("both-5")?.value).toBe("new");
  expect(a.antiEntropy.stats.keysPulled).toBe(300); // 200 only-b + 100 newer
  expect(a.antiEntropy.stats.keysPushed).toBe(300);
  // In sync: the next round moves nothing.
  await a.antiEntropy.round();
  expect(a.antiEntropy.stats.keysPulled + a.antiEntropy.stats.keysPushed).toBe(600);
});
