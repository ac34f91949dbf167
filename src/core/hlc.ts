/**
 * Hybrid logical clock (Kulkarni et al.): a version that stays close to wall time, never goes
 * backwards on one node even when the wall clock does, and orders after every version the node
 * has seen from others. Versions are totally ordered by (wallMs, counter, nodeId); the last
 * writer by that order wins.
 *
 * Bounds (part of the wire contract): the counter fits in 32 bits (the store keeps it in a
 * Uint32Array); when it would pass COUNTER_MAX the clock moves its wall time forward by 1 ms
 * (counter 0) instead, which keeps the order and never wraps. Wall times are safe non-negative
 * integers, node ids 1..NODE_ID_CHARS_MAX characters. A remote version whose wall time is more
 * than the configured skew ahead of this member's clock is refused before it is stored or
 * observed (`aheadByMs`, `withinSkew`), so one fast clock or forged record cannot drag every
 * clock forward for good.
 */

/** Largest counter: the store keeps counters in a Uint32Array. */
export const COUNTER_MAX = 2 ** 32 - 1;
/** Largest wall time: a safe integer, so versions compare exactly. */
export const WALL_MS_MAX = Number.MAX_SAFE_INTEGER;
/** Longest node id in a version (the same bound as --node-id). */
export const NODE_ID_CHARS_MAX = 256;

export interface Version {
  readonly wallMs: number;
  readonly counter: number;
  readonly nodeId: string;
}

/** The clock's state: the largest (wallMs, counter) this node has issued or seen. */
export interface HlcState {
  wallMs: number;
  counter: number;
}

export function newHlc(): HlcState {
  return { wallMs: 0, counter: 0 };
}

/** Issue a version for a local event at physical time `nowMs` (injected). Mutates `state`. */
export function tick(state: HlcState, clockMs: number, nodeId: string): Version {
  // Versions are whole milliseconds (the wire and the store take integers): a scheduler whose
  // clock has fractions (performance.now(), the simulator's disk delays) is rounded down.
  const nowMs = Math.floor(clockMs);
  if (nowMs > state.wallMs) {
    state.wallMs = nowMs;
    state.counter = 0;
  } else {
    setNext(state, state.wallMs, state.counter + 1);
  }
  return { wallMs: state.wallMs, counter: state.counter, nodeId };
}

/** Fold in a version received from elsewhere so later local versions order after it. */
export function observe(state: HlcState, remote: Version, nowMs: number): void {
  const wall = Math.max(state.wallMs, remote.wallMs, Math.floor(nowMs));
  if (wall === state.wallMs && wall === remote.wallMs) {
    setNext(state, wall, Math.max(state.counter, remote.counter) + 1);
  } else if (wall === state.wallMs) {
    setNext(state, wall, state.counter + 1);
  } else if (wall === remote.wallMs) {
    setNext(state, wall, remote.counter + 1);
  } else {
    setNext(state, wall, 0);
  }
}

/** Set the clock to (wallMs, counter), or to (wallMs + 1, 0) when the counter would overflow. */
function setNext(state: HlcState, wallMs: number, counter: number): void {
  if (counter > COUNTER_MAX) {
    state.wallMs = wallMs + 1;
    state.counter = 0;
  } else {
    state.wallMs = wallMs;
    state.counter = counter;
  }
}

/** How far `v`'s wall time is ahead of this member's clock reading `nowMs` (0 if not ahead). */
export function aheadByMs(v: Version, nowMs: number): number {
  return Math.max(0, v.wallMs - nowMs);
}

/** Is `v` at most `maxSkewMs` ahead of `nowMs`? A remote version that is not must be refused. */
export function withinSkew(v: Version, nowMs: number, maxSkewMs: number): boolean {
  return aheadByMs(v, nowMs) <= maxSkewMs;
}

/** Are the version's fields within the bounds above? (Remote versions are checked on receipt.) */
export function isBoundedVersion(v: Version): boolean {
  return Number.isSafeInteger(v.wallMs) && v.wallMs >= 0 && Number.isSafeInteger(v.counter) &&
    v.counter >= 0 && v.counter <= COUNTER_MAX && v.nodeId.length >= 1 &&
    v.nodeId.length <= NODE_ID_CHARS_MAX;
}

/** Total order: negative if a < b, 0 if equal, positive if a > b. */
export function compareVersions(a: Version, b: Version): number {
  if (a.wallMs !== b.wallMs) return a.wallMs - b.wallMs;
  if (a.counter !== b.counter) return a.counter - b.counter;
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

/**
 * The text of recent wall times, by their low 10 bits (a record's version is formatted on every
 * read it answers; a number's text took a few percent of a one-node GET's JavaScript time, and
 * records written around the same time share their wallMs).
 */
const WALL_TEXT = new Array<string>(1024).fill("");
const WALL_MS = new Float64Array(1024).fill(-1);

/** Text form used in the public API: `<wallMs>.<counter>@<nodeId>`. */
export function formatVersion(v: Version): string {
  const w = v.wallMs;
  const i = w & 1023;
  let text: string;
  if (WALL_MS[i] === w) text = WALL_TEXT[i]!;
  else {
    text = String(w);
    WALL_MS[i] = w;
    WALL_TEXT[i] = text;
  }
  return `${text}.${v.counter}@${v.nodeId}`;
}

export function parseVersion(text: string): Version | undefined {
  // `s`: a node id may hold any character, line breaks too (--node-id is free text).
  const m = /^(\d+)\.(\d+)@(.+)$/s.exec(text);
  if (!m) return undefined;
  const v: Version = { wallMs: Number(m[1]), counter: Number(m[2]), nodeId: m[3]! };
  return isBoundedVersion(v) ? v : undefined;
}
