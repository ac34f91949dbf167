/**
 * Member states and roles, shared by the gossip membership (src/core/swim*.ts) and the views
 * built from it.
 *
 * UP: answering. SUSPECT: a probe failed; not a verdict (it can refute). DOWN: the suspicion ran
 * out; its replicas are skipped (hints stand in) but it still owns partitions until it has been
 * DOWN for --dead-after, when the duty holder takes it out of the ring. LEFT: it left on purpose
 * (graceful leave); out of the ring at once, it still answers for its data until handed off.
 */

export type MemberState = "UP" | "SUSPECT" | "DOWN" | "LEFT";
/** A gateway coordinates requests like any member but holds no data and is never in the ring. */
export type Role = "orchestrator" | "node" | "gateway";
