/**
 * The `hedge` scenario of scripts/bench.ts (issue 16, point 15): p50/p99 of `one` and `quorum`
 * reads while one replica of three is SIGSTOPped, with read hedging off and on (default p99), on
 * the same binary, clusters started in turns (off, on, off, on, ...).
 *
 * The stopped node accepts connections and answers nothing, which is what a paused VM or a
 * stuck process looks like. Gossip would soon call it DOWN, and reads skip DOWN members, so the
 * cluster runs with suspicion stretched (--probe-interval-ms 500, --suspicion-mult 100: about 50 s
 * before DOWN) and each run checks that it was still being asked at the end. --request-timeout is
 * 500 ms, as in the report (a `one` read took 508 ms).
 */
import { type Proc, sleep } from "./procs.ts";
import { startDkv, type System } from "./systems.ts";

export const HEDGE_KEYS = 300;
/** Reads per case per run, and how many run at once. */
export const HEDGE_READS = 400;
const HEDGE_CONCURRENCY = 8;
const WARMUP_READS = 600;

export const HEDGE_FLAGS = [
  "--request-timeout",
  "500ms",
  "--probe-interval-ms",
  "500",
  "--suspicion-mult",
  "100",
  "--suspicion-max-mult",
  "1",
] as const;

export interface ReadLatencies {
  /** Milliseconds, sorted. */
  readonly ms: number[];
  readonly errors: number;
}

export interface HedgeRun {
  readonly hedge: "off" | "p99";
  readonly one: ReadLatencies;
  readonly quorum: ReadLatencies;
  /** The stopped node's state in node 1's view when the run ended (SUSPECT: still asked). */
  readonly stoppedState: string;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

async function timedReads(
  address: string,
  keys: readonly string[],
  consistency: string,
  count: number,
): Promise<ReadLatencies> {
  const ms: number[] = [];
  let errors = 0;
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const key = keys[(i * 7919) % keys.length]!;
      const t0 = performance.now();
      try {
        const res = await fetch(`http://${address}/kv/${key}?consistency=${consistency}`, {
          signal: AbortSignal.timeout(10_000),
        });
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
      } catch {
        errors++;
      }
      ms.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: HEDGE_CONCURRENCY }, worker));
  return { ms: ms.sort((a, b) => a - b), errors };
}

async function put(address: string, key: string, value: string): Promise<void> {
  const res = await fetch(`http://${address}/kv/${key}?consistency=all`, {
    method: "PUT",
    body: value,
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`preload PUT ${key}: ${res.status}`);
}

/** One run: a fresh orchestrator + 3 nodes (N=3), node 3 stopped, then the two read cases. */
export async function hedgeRun(hedge: "off" | "p99", label: string): Promise<HedgeRun> {
  const sys: System = await startDkv(label, 3, 3, [...HEDGE_FLAGS, "--read-hedge", hedge]);
  const n3 = sys.procs[3] as Proc;
  const orchAddress = sys.orchestratorAddress!;
  const node1 = sys.addresses[0]!;
  try {
    await sleep(1000); // quorum is refused for a moment after start-up (membership settles)
    const keys = Array.from(
      { length: HEDGE_KEYS },
      (_, i) => `hedge-${String(i).padStart(4, "0")}`,
    );
    for (let i = 0; i < keys.length; i += 10) {
      await Promise.all(keys.slice(i, i + 10).map((k) => put(node1, k, `value-of-${k}`)));
    }
    // Warm-up, nothing stopped: the members' latency windows fill, connections open.
    await timedReads(orchAddress, keys, "one", WARMUP_READS);
    await timedReads(node1, keys, "quorum", WARMUP_READS);
    process.kill(n3.pid, "SIGSTOP");
    try {
      const one = await timedReads(orchAddress, keys, "one", HEDGE_READS);
      const quorum = await timedReads(node1, keys, "quorum", HEDGE_READS);
      const all = await (await fetch(`http://${node1}/all-nodes`)).json() as {
        allNodes: { id: string; status: string }[];
      };
      const stoppedState = all.allNodes.find((m) => m.id === sys.addresses[2])?.status ?? "?";
      return { hedge, one, quorum, stoppedState };
    } finally {
      process.kill(n3.pid, "SIGCONT");
    }
  } finally {
    await sys.stop();
  }
}
