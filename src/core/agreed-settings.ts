/**
 * Settings every member of a cluster must share, and how two members' copies differ.
 *
 * N and P place keys: members that disagree compute different replica sets, so one acknowledges
 * writes the others never see. The key, value and member limits decide what a member accepts: a
 * member with a smaller --max-members keeps only part of the table (and may see a cluster of
 * one), and keys or values one member takes are refused by another. Members compare their copies
 * when they meet (every full-table exchange carries them); a difference is an operator error,
 * logged on both sides and listed in /cluster/status. Pure: no I/O, no clock.
 */

/** A member's own limits (its flags), compared with every member it meets. */
export interface MemberLimits {
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
  readonly membersMax: number;
}

/** Placement settings in force at a member, and who set them. */
export interface Placement {
  readonly replicationFactor: number;
  readonly partitions: number;
  readonly source: "orchestrator" | "node";
}

const LIMIT_FLAGS: readonly [keyof MemberLimits, string][] = [
  ["keyBytesMax", "--max-key-bytes"],
  ["valueBytesMax", "--max-value-bytes"],
  ["membersMax", "--max-members"],
];

/**
 * How `theirs` differs from `mine`, one phrase per setting ("--max-members 1024 here, 2 there"),
 * empty when they agree. Placement is compared only between settings of the same source: a node
 * still on its own flags adopts an orchestrator's when it hears from it, so that difference is
 * transient, not a mismatch.
 */
export function settingsDiffer(
  mine: { readonly limits: MemberLimits; readonly placement: Placement | undefined },
  theirs: { readonly limits?: MemberLimits; readonly placement?: Placement },
): string[] {
  const out: string[] = [];
  const a = mine.placement, b = theirs.placement;
  if (a !== undefined && b !== undefined && a.source === b.source) {
    if (a.replicationFactor !== b.replicationFactor) {
      out.push(`--replication-factor ${a.replicationFactor} here, ${b.replicationFactor} there`);
    }
    if (a.partitions !== b.partitions) {
      out.push(`--partitions ${a.partitions} here, ${b.partitions} there`);
    }
  }
  if (theirs.limits !== undefined) {
    for (const [field, flag] of LIMIT_FLAGS) {
      const x = mine.limits[field], y = theirs.limits[field];
      if (x !== y) out.push(`${flag} ${x} here, ${y} there`);
    }
  }
  return out;
}
