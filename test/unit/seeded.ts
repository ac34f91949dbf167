/**
 * A small seeded PRNG (mulberry32) for the unit tests' property checks: a failing case prints
 * its seed, and the same seed replays it. Not a test file itself (no `.test.` in the name).
 */
import type { Version } from "../../src/core/hlc.ts";
import type { KvRecord } from "../../src/core/record.ts";

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
  shuffle<T>(xs: readonly T[]): T[];
}

export function rng(seed: number): Rng {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!,
    shuffle: <T>(xs: readonly T[]): T[] => {
      const a = [...xs];
      for (let i = a.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [a[i], a[j]] = [a[j]!, a[i]!];
      }
      return a;
    },
  };
}

/** Seeds for property checks: enough to explore, few enough to stay in milliseconds. */
export const SEEDS: readonly number[] = Array.from({ length: 200 }, (_, i) => 0x9e37 + i * 7919);

export const ver = (wallMs: number, counter = 0, nodeId = "n1"): Version => ({
  wallMs,
  counter,
  nodeId,
});

export const put = (key: string, value: string, version: Version): KvRecord => ({
  key,
  value,
  version,
  tombstone: false,
});

export const del = (key: string, version: Version): KvRecord => ({
  key,
  value: "",
  version,
  tombstone: true,
});
