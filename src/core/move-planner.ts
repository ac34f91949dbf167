/**
 * The move planner: given the partition table before and after a ring change, which partitions
 * this node must stream, to whom, and whether it drops them afterwards. Pure: the caller says
 * which partitions it holds data for and which members are alive.
 *
 * Rules, per partition p (old = replicas before, new = replicas after):
 * - I hold data for p (or owned it) but am not in new: stream p to the owners that were added
 *   (new − old), or to every new owner when I am leaving the ring or did not own p before; then
 *   drop p. Until the drop, my copy still serves reads that miss on the new owners. With no
 *   owner at all in new (the last node leaving), nothing is planned: the data stays.
 * - Every task ends with "done" to its targets, an empty one too, so a new owner knows when its
 *   copy of the partition is complete.
 * - I am in both old and new and owners were added: if some displaced owner (old − new) is alive
 *   it streams; otherwise the first continuing owner (in new preference order) streams — every
 *   node computes the same choice from the same tables, so each partition moves once.
 * - I am newly in new: p is "moving in" until it has merged the copies of enough old owners
 *   (`sourcesNeeded`): their streams said done, or anti-entropy found it equal to theirs.
 */
import { requiredAcks } from "./placement.ts";

export interface MoveTask {
  readonly partition: number;
  /** Member ids to stream the partition to. */
  readonly targets: readonly string[];
  /** Drop the partition once every target acknowledged every batch. */
  readonly drop: boolean;
}

export interface MovePlan {
  readonly tasks: MoveTask[];
  readonly movingIn: number[];
}

export interface PlanInput {
  readonly self: string;
  /** Table before the change; undefined when this node has no earlier view (it just started). */
  readonly oldTable: readonly (readonly string[])[] | undefined;
  readonly newTable: readonly (readonly string[])[];
  /** Does this node hold any record (live or tombstone) of partition p? */
  held(partition: number): boolean;
  /** Is the member alive (not DOWN or gone) in the new view? */
  alive(id: string): boolean;
}

export function planMoves(input: PlanInput): MovePlan {
  const { self, oldTable, newTable } = input;
  const leaving = !newTable.some((owners) => owners.includes(self));
  const tasks: MoveTask[] = [];
  const movingIn: number[] = [];
  for (let p = 0; p < newTable.length; p++) {
    const now = newTable[p]!;
    const before = oldTable?.[p];
    const isOwner = now.includes(self);
    const wasOwner = before?.includes(self) ?? false;
    if (!isOwner) {
      // No owner at all (the ring is empty: the last node is leaving): nowhere to hand off.
      if (now.length === 0) continue;
      const held = input.held(p);
      if (!held && !wasOwner) continue;
      const added = before && wasOwner && !leaving
        ? now.filter((id) => !before.includes(id))
        : [...now];
      // A displaced owner with no data still tells the added owners it is done (an empty task),
      // so they stop waiting for the partition.
      if (added.length === 0 && !held) continue;
      tasks.push({ partition: p, targets: added, drop: true });
      continue;
    }
    if (before === undefined) continue;
    if (!wasOwner) {
      movingIn.push(p);
      continue;
    }
    const added = now.filter((id) => !before.includes(id));
    if (added.length === 0) continue;
    const displacedAlive = before.some((id) => !now.includes(id) && input.alive(id));
    if (displacedAlive) continue;
    const designated = now.find((id) => before.includes(id) && input.alive(id));
    // Sent even when empty: the added owners learn the partition is complete.
    if (designated === self) tasks.push({ partition: p, targets: added, drop: false });
  }
  return { tasks, movingIn };
}

/** Did the ring's ownership change between two tables? */
export function tablesDiffer(
  a: readonly (readonly string[])[] | undefined,
  b: readonly (readonly string[])[],
): boolean {
  if (a === undefined || a.length !== b.length) return true;
  for (let p = 0; p < a.length; p++) {
    const x = a[p]!, y = b[p]!;
    if (x.length !== y.length || x.some((id, i) => id !== y[i])) return true;
  }
  return false;
}

/**
 * How many distinct previous owners of a partition a new owner must have merged before its copy
 * is complete: enough to meet every quorum of them (n − ⌊n/2⌋ of n; 2 of 3). A write acknowledged
 * by a quorum of the old owners is then on the new owner too, and with the continuing owners on a
 * quorum of the new ones. One is not enough: a continuing owner may have missed writes a quorum of
 * the old owners took (cut off meanwhile), and a quorum of new owners made of it and a newcomer
 * filled from it alone would answer without them, to a coordinator that does not remember the old
 * ring (sim seed 11: a compare-and-set lost three acknowledged increments that way).
 */
export function sourcesNeeded(previousOwners: number): number {
  return previousOwners <= 0 ? 0 : previousOwners - requiredAcks("quorum", previousOwners) + 1;
}

/** A partition this node is receiving. */
export interface Incoming {
  /** Its owners before it started moving in here: who may hold what this node misses. */
  readonly from: readonly string[];
  /** How many distinct members of `from` must have been merged. */
  readonly need: number;
  /** Members of `from` whose whole copy this node has merged (their stream done, or in sync). */
  readonly merged: Set<string>;
}

export function incoming(from: readonly string[], need = sourcesNeeded(from.length)): Incoming {
  return { from, need, merged: new Set() };
}

/**
 * This node merged `source`'s whole copy of the partition; true when that completes it. A source
 * that was no previous owner counts for nothing; previous owners the view has forgotten (gone for
 * good, their copies with them) count as merged, so a partition does not wait forever for them.
 */
export function mergedFrom(x: Incoming, source: string, known: (id: string) => boolean): boolean {
  if (x.from.includes(source)) x.merged.add(source);
  let n = 0;
  for (const id of x.from) if (x.merged.has(id) || !known(id)) n++;
  return n >= x.need;
}
