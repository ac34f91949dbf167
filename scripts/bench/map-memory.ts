/**
 * Memory baseline for scripts/bench.ts: RSS and heap of this Bun process before and after
 * filling a plain Map with KEYS distinct keys of the same shape dkv gets (bench-mem-0000001)
 * and distinct VALUE_BYTES-byte string values. Prints one JSON line.
 * Usage: bun scripts/bench/map-memory.ts KEYS VALUE_BYTES
 */
import { readFileSync } from "node:fs";

const keys = Number(process.argv[2] ?? 1_000_000);
const valueBytes = Number(process.argv[3] ?? 100);

function rssBytes(): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return Number(m?.[1] ?? NaN) * 1024;
}

Bun.gc(true);
const rssBefore = rssBytes();
const heapBefore = process.memoryUsage().heapUsed;
const map = new Map<string, string>();
const filler = "x".repeat(Math.max(0, valueBytes - 8));
for (let i = 0; i < keys; i++) {
  const tag = String(i).padStart(8, "0");
  // Concatenation makes a rope; flattening it (a char read) gives each value its own buffer.
  const value = (filler + tag).slice(0, valueBytes);
  value.charCodeAt(0);
  map.set(`bench-mem-${String(i).padStart(7, "0")}`, value);
}
Bun.gc(true);
const rssAfter = rssBytes();
const heapAfter = process.memoryUsage().heapUsed;
console.log(
  JSON.stringify({ keys, valueBytes, rssBefore, rssAfter, heapBefore, heapAfter, size: map.size }),
);
