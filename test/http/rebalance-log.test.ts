/**
 * Issue 16, point 16: a rebalance's log lines count each key once, not once per target it was
 * streamed to (a node holding 31 keys logged 96 when it left a ring of N=3).
 */
import { afterEach, expect, test } from "bun:test";
import type { Logger } from "../../src/log.ts";
import { member, type MemoryCluster, memoryCluster } from "./memory-cluster.ts";
import { waitFor } from "../support/cluster.ts";

let c: MemoryCluster | undefined;
afterEach(() => c?.stop());

test("a leaving node's rebalance end line counts the keys it held once", async () => {
  c = await memoryCluster(4, ["--replication-factor", "3", "--partitions", "16"]);
  const leaver = c.nodes[0]!;
  for (let i = 0; i < 31; i++) {
    const r = await leaver.app.request(`/kv/k${i}`, { method: "PUT", body: "v" });
    expect(r.status).toBe(200);
  }
  const held = leaver.store.size;
  expect(held).toBeGreaterThan(0);
  const lines: string[] = [];
  const capture: Logger = {
    debug() {},
    info: (m) => lines.push(m),
    warn: (m) => lines.push(m),
    error: (m) => lines.push(m),
  };
  // The rebalancer's logger, swapped for one that keeps the lines.
  Object.defineProperty(leaver.rebalancer, "log", { value: capture });
  c.setView({
    ...c.view,
    epoch: 2,
    members: c.view.members.map((m) =>
      m.id === leaver.config.nodeId ? { ...member(m.id), state: "LEFT", inRing: false } : m
    ),
  });
  const end = await waitFor("the rebalance end line", () => {
    return lines.find((l) => l.startsWith("rebalance end:"));
  }, 20_000);
  const keys = Number(/ (\d+) keys/.exec(end)?.[1]);
  expect({ end, keys }).toEqual({ end, keys: held });
  // The copies sent to every target are counted on their own.
  expect(end).toMatch(/\d+ copies to their targets/);
}, 30_000);
