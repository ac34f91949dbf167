/**
 * Anti-entropy's progress (issue 14, logs): while a round runs, AntiEntropy.progress() says how
 * far it is, and the data node's progress line carries partitions, keys, bytes, rates and an ETA
 * once the round has run for --progress-interval. In process, on this test's own clock.
 */
import { afterEach, expect, test } from "bun:test";
import type { LogFields, Logger } from "../../src/log.ts";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster | undefined;
afterEach(() => c?.stop());

test("an anti-entropy round's progress line, on a replica that lost its data", async () => {
  let clock = 1_000_000;
  c = await memoryCluster(3, ["--partitions", "16", "--progress-interval", "5s"], () => clock);
  const [writer, stale] = [c.nodes[0]!, c.nodes[1]!];
  for (let i = 0; i < 40; i++) {
    const r = await writer.app.request(`/kv/ae-${i}?consistency=all`, { method: "PUT", body: "v" });
    expect(r.status).toBe(200);
  }
  for (let p = 0; p < 16; p++) stale.store.dropPartition(p);
  expect(stale.store.size).toBe(0);

  const lines: { msg: string; fields?: LogFields }[] = [];
  const capture: Logger = {
    debug() {},
    info: (msg, fields) => lines.push({ msg, ...(fields === undefined ? {} : { fields }) }),
    warn() {},
    error() {},
  };
  Object.defineProperty(stale, "log", { value: capture });

  expect(stale.antiEntropy.progress()).toBeUndefined();
  const round = stale.antiEntropy.round();
  // The round has started (its synchronous part ran): 16 partitions with each of 2 peers.
  const started = stale.antiEntropy.progress();
  expect(started).toMatchObject({ startedAtMs: 1_000_000, partitionsTotal: 32 });
  // Shorter than --progress-interval so far: no line.
  stale.logProgress();
  expect(lines).toEqual([]);
  clock += 6000;
  stale.logProgress();
  expect(lines.length).toBe(1);
  expect(lines[0]!.msg).toMatch(
    /^anti-entropy progress: \d+\/32 partitions, \d+ keys, \d+ bytes, /,
  );
  expect(lines[0]!.fields).toMatchObject({ job: "anti-entropy", elapsedS: 6 });
  expect(lines[0]!.fields?.partitions).toMatch(/^\d+\/32$/);

  await round;
  expect(stale.antiEntropy.progress()).toBeUndefined();
  expect(stale.store.size).toBe(40);
  expect(stale.antiEntropy.stats.keysPulled).toBeGreaterThanOrEqual(40);
});
