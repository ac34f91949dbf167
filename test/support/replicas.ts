/**
 * One replica left behind, with real processes: pause a member with SIGSTOP until the others
 * see it DOWN, and resume it (the way the e2e tests make one replica miss writes and deletes
 * while keeping its copy: a restarted member comes back empty and cannot show a stale or
 * resurrected value); read what a node itself holds; sum the repair counters. Every wait is a
 * condition with a deadline.
 */
import type { Op, StoredRecord } from "./checker.ts";
import { allUp, type Cluster, http, nodeStates, type Proc, stopAll, waitFor } from "./cluster.ts";
import { ownCopies } from "./history.ts";

export const SIGSTOP = 19;
export const SIGCONT = 18;

/** The addresses of `ps`. */
export const addrs = (ps: readonly Proc[]) => ps.map((p) => p.address);
/** `prefix`0, `prefix`1, … `prefix`(n − 1). */
export const keysOf = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** After a test that pauses members: resume every member of `c` (if any), then stop them all. */
export async function resumeAndStopAll(c: Cluster | undefined): Promise<void> {
  for (const p of c?.all() ?? []) p.kill(SIGCONT);
  await stopAll();
}

/** SIGSTOP `p`, then wait until every one of `observers` lists it DOWN. */
export async function pauseUntilDown(p: Proc, observers: readonly Proc[]): Promise<void> {
  p.kill(SIGSTOP);
  await waitFor(`${p.name} DOWN on ${observers.map((o) => o.name).join(", ")}`, async () => {
    for (const o of observers) {
      if ((await nodeStates(o.address)).get(p.address) !== "DOWN") return false;
    }
    return true;
  }, 20_000);
}

/**
 * SIGCONT `p`, then wait until it and every one of `observers` list exactly `nodes` UP, and `p`
 * serves quorum reads again (a member back from a pause refuses them while its view settles).
 */
export async function resumeUntilServing(
  p: Proc,
  observers: readonly Proc[],
  nodes: readonly Proc[],
): Promise<void> {
  p.kill(SIGCONT);
  const ids = nodes.map((n) => n.address);
  for (const o of [p, ...observers]) {
    await waitFor(`${o.name} to list every node UP`, () => allUp(o.address, ids), 20_000);
  }
  await waitFor(`${p.name} to serve quorum reads`, async () => {
    const r = await http("GET", p.address, "/kv/pause-probe?consistency=quorum");
    return r.status === 404 || r.status === 200;
  });
}

/** `node`'s own copy of every key (no coordinator in between, so no read repair). */
export async function own(
  node: Proc,
  keys: readonly string[],
): Promise<Record<string, StoredRecord | null>> {
  return (await ownCopies([node.address], keys)).get(node.address)!;
}

/** The version of each acknowledged write, by key. */
export function versionsOf(ops: readonly Op[]): Map<string, string> {
  return new Map(ops.map((o) => [o.key, o.version!]));
}

/** The keys of `copy` that do not hold `want(key)`: a version, or "deleted" (no live value). */
export function differing(
  copy: Readonly<Record<string, StoredRecord | null>>,
  keys: readonly string[],
  want: (key: string) => string,
): string[] {
  return keys.filter((k) => {
    const r = copy[k] ?? null;
    const got = r === null || r.tombstone ? "deleted" : r.version;
    return got !== want(k);
  });
}

/** Anti-entropy keys moved, read repairs and hints delivered, summed over `nodes`. */
export async function repairs(nodes: readonly Proc[]) {
  const statuses = await Promise.all(
    nodes.map((n) => http("GET", n.address, "/internal/v1/status")),
  );
  let antiEntropy = 0, readRepairs = 0, hintsDelivered = 0;
  for (const { body: s } of statuses) {
    antiEntropy += s.antiEntropy.keysPulled + s.antiEntropy.keysPushed;
    readRepairs += s.readRepairs;
    hintsDelivered += s.hintsDelivered;
  }
  return { antiEntropy, readRepairs, hintsDelivered };
}

/** The keys of `keys` whose replicas (per `member`) include `node`. */
export async function keysOn(
  member: Proc,
  node: Proc,
  keys: readonly string[],
): Promise<string[]> {
  const out: string[] = [];
  for (const k of keys) {
    const r = await http("GET", member.address, `/all-nodes/${k}`);
    if ((r.body.allNodes as { id: string }[]).some((m) => m.id === node.address)) out.push(k);
  }
  return out;
}
