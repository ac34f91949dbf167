/**
 * Hybrid logical clock (Kulkarni et al.): a version that stays close to wall time, never goes
 * backwards on one node even when the wall clock does, and orders after every version the node
 * has seen from others. Versions are totally ordered by (wallMs, counter, nodeId); the last
 * writer by that order wins.
 */

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
export function tick(state: HlcState, nowMs: number, nodeId: string): Version {
  if (nowMs > state.wallMs) {
    state.wallMs = nowMs;
    state.counter = 0;
  } else {
    state.counter += 1;
  }
  return { wallMs: state.wallMs, counter: state.counter, nodeId };
}

/** Fold in a version received from elsewhere so later local versions order after it. */
export function observe(state: HlcState, remote: Version, nowMs: number): void {
  const wall = Math.max(state.wallMs, remote.wallMs, nowMs);
  if (wall === state.wallMs && wall === remote.wallMs) {
    state.counter = Math.max(state.counter, remote.counter) + 1;
  } else if (wall === state.wallMs) {
    state.counter += 1;
  } else if (wall === remote.wallMs) {
    state.counter = remote.counter + 1;
  } else {
    state.counter = 0;
  }
  state.wallMs = wall;
}

/** Total order: negative if a < b, 0 if equal, positive if a > b. */
export function compareVersions(a: Version, b: Version): number {
  if (a.wallMs !== b.wallMs) return a.wallMs - b.wallMs;
  if (a.counter !== b.counter) return a.counter - b.counter;
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

/** Text form used in the public API: `<wallMs>.<counter>@<nodeId>`. */
export function formatVersion(v: Version): string {
  return `${v.wallMs}.${v.counter}@${v.nodeId}`;
}

export function parseVersion(text: string): Version | undefined {
  const m = /^(\d+)\.(\d+)@(.+)$/.exec(text);
  if (!m) return undefined;
  const wallMs = Number(m[1]), counter = Number(m[2]);
  if (!Number.isSafeInteger(wallMs) || !Number.isSafeInteger(counter)) return undefined;
  return { wallMs, counter, nodeId: m[3]! };
}
