/**
 * Pausing a real member with SIGSTOP until the others see it DOWN, and resuming it: the way the
 * e2e tests make one replica miss writes and deletes while keeping its copy (a restarted member
 * comes back empty and cannot show a stale or resurrected value). Every wait is a condition
 * with a deadline.
 */
import { allUp, http, nodeStates, type Proc, waitFor } from "./cluster.ts";

export const SIGSTOP = 19;
export const SIGCONT = 18;

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
