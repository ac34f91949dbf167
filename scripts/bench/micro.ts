/** Timing loops for the in-process micro-benchmarks (bench-auth.ts, bench-tokens.ts). */

/** µs per call of `f`, run for about `budgetMs` in batches of `batch`, after a warm-up. */
export function timeSync(f: () => void, budgetMs: number, batch: number): number {
  for (let i = 0; i < 2000; i++) f();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < budgetMs) {
    for (let i = 0; i < batch; i++) f();
    n += batch;
    t = performance.now();
  }
  return ((t - t0) * 1000) / n;
}

/** µs per call of the async `f`, run for about `seconds`, after a warm-up. */
export async function timeAsync(f: () => Promise<void>, seconds: number): Promise<number> {
  for (let i = 0; i < 200; i++) await f();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < seconds * 1000) {
    for (let i = 0; i < 50; i++) await f();
    n += 50;
    t = performance.now();
  }
  return ((t - t0) * 1000) / n;
}

/** The middle of five interleaved rounds. */
export const median5 = (xs: readonly number[]) => [...xs].sort((x, y) => x - y)[2]!;

/** One line per op: µs without and with the feature, and their ratio. */
export function printRatios(
  results: readonly [string, number, number][],
  without: string,
  withIt: string,
): void {
  console.log(`   op    ${without.padStart(9)} ${withIt.padStart(9)}    ratio`);
  for (const [name, a, b] of results) {
    console.log(
      `   ${name.padEnd(5)} ${a.toFixed(1).padStart(9)} ${b.toFixed(1).padStart(9)}    ${
        (b / a).toFixed(2)
      }×`,
    );
  }
}

/** µs per client op (`method` on keys k0…k999) against an in-process app, run for `seconds`. */
export function timeKvOps(
  app: { request: (path: string, init: RequestInit) => Response | Promise<Response> },
  method: string,
  body: string | undefined,
  headers: Record<string, string>,
  seconds: number,
): Promise<number> {
  let i = 0;
  return timeAsync(async () => {
    const res = await app.request(`/kv/k${i++ % 1000}`, {
      method,
      headers,
      ...(body ? { body } : {}),
    });
    if (res.status !== 200 && !(method === "GET" && res.status === 404)) {
      throw new Error(`${method} answered ${res.status}`);
    }
    await res.arrayBuffer();
  }, seconds);
}
