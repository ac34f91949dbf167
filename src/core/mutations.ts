/**
 * Known-bad behaviours the simulator switches on to prove its checker catches them (each is a bug
 * this project once had). No flag, environment variable or HTTP route reaches this object: only
 * code in the same process (test/sim) can flip a switch. All off in a real member.
 */
export const mutations = {
  /** A hint stored for a failed replica counts toward W (the coordinator may count itself twice). */
  countHints: false,
  /** Reads do not repair replicas and anti-entropy rounds do nothing. */
  noRepair: false,
  /**
   * The old mover: it drops a partition as soon as its stream is acked (no wait for the ring to
   * spread, no catch-up passes), and replicas take replica calls without the replica-list check
   * (which alone refuses the late writes the early drop would lose).
   */
  dropRightAfterStream: false,
  /** Paxos acceptors promise and accept every ballot (no ordering): conditional writes race. */
  paxosNoBallots: false,
};

export type Mutation = keyof typeof mutations;

/** Switch every mutation off (the simulator calls it between runs). */
export function resetMutations(): void {
  for (const k of Object.keys(mutations) as Mutation[]) mutations[k] = false;
}
