/**
 * A linearizability checker for a register per key with read, write, compare-and-set and incr:
 * the Wing & Gong search with Lowe's memoization, as Knossos and Porcupine do it.
 *
 * A history is a list of operations, each with the time it was invoked and the time it answered.
 * It is linearizable when every operation can be given one instant between the two, in an order
 * that the sequential register explains (each read sees the last write, each CAS succeeds exactly
 * when the register held its expected value, each incr answers the sum). The search tries the
 * operations that may go first (calls not preceded by an answer still open), in order, and backs
 * up when the model refuses one; (set of ops placed, register state) pairs already seen are not
 * tried again (Lowe), which makes typical histories take milliseconds.
 *
 * Operations whose outcome is unknown (a timeout, a 503 that may have been applied) answer at
 * +∞: they may be placed anywhere after their call, or at the end where they change nothing that
 * is checked. Keys are independent (P-compositionality: a history is linearizable iff each key's
 * sub-history is), so each key is searched alone. The search is bounded in time: past the bound
 * the verdict is `unknown`, never a false pass.
 */

/** The register's value: text, or null for absent. */
export type RegValue = string | null;

export type LinOp =
  | { readonly kind: "read"; readonly value: RegValue }
  | { readonly kind: "write"; readonly value: RegValue }
  /** Succeeded: the register held `from`, now holds `to`. */
  | { readonly kind: "cas"; readonly from: RegValue; readonly to: RegValue }
  /** Condition failed: the register did not hold `from` (and held `saw`, when known). */
  | { readonly kind: "cas-fail"; readonly from: RegValue; readonly saw?: RegValue }
  /** The register held an integer n (absent: 0) and now holds n + by; `value`: the answer. */
  | { readonly kind: "incr"; readonly by: number; readonly value?: number };

export interface LinEntry {
  readonly key: string;
  readonly client?: number;
  readonly op: LinOp;
  readonly invokeMs: number;
  /** Infinity when the outcome is unknown (the op may or may not have taken effect). */
  readonly completeMs: number;
}

export interface LinVerdict {
  readonly ok: boolean;
  /** True when the time bound ran out on some key (then `ok` is false and nothing is proven). */
  readonly timedOut: boolean;
  /** Keys whose histories are not linearizable (or timed out). */
  readonly badKeys: string[];
  /** For a bad key: the most operations the search could place, and the ones it could not. */
  readonly detail: string[];
}

/** One step of the sequential register: the new state, or undefined when `op` cannot happen. */
export function step(state: RegValue, op: LinOp, unknown: boolean): RegValue | undefined {
  switch (op.kind) {
    case "read":
      return op.value === state ? state : undefined;
    case "write":
      return op.value;
    case "cas":
      // One of unknown outcome may have found another value, and failed: no change.
      return state === op.from ? op.to : unknown ? state : undefined;
    case "cas-fail":
      if (state === op.from) return undefined;
      return op.saw === undefined || op.saw === state ? state : undefined;
    case "incr": {
      const n = state === null ? 0 : /^-?(0|[1-9][0-9]*)$/.test(state) ? Number(state) : NaN;
      if (!Number.isSafeInteger(n)) return undefined;
      const next = n + op.by;
      if (!unknown && op.value !== undefined && op.value !== next) return undefined;
      return String(next);
    }
  }
}

interface Node {
  readonly id: number;
  readonly isCall: boolean;
  readonly time: number;
  match?: Node; // a call's return
  prev?: Node;
  next?: Node;
}

/** Check one key's history. `deadlineMs` is a Date.now() bound. */
function checkKey(
  ops: readonly LinEntry[],
  initial: RegValue,
  deadlineMs: number,
): { ok: boolean; timedOut: boolean; placed: number } {
  const n = ops.length;
  if (n === 0) return { ok: true, timedOut: false, placed: 0 };
  // Events: calls and returns, by time; at equal times calls first (such ops overlap).
  const events: Node[] = [];
  for (let i = 0; i < n; i++) {
    const call: Node = { id: i, isCall: true, time: ops[i]!.invokeMs };
    const ret: Node = { id: i, isCall: false, time: ops[i]!.completeMs };
    call.match = ret;
    events.push(call, ret);
  }
  events.sort((a, b) =>
    a.time - b.time || (a.isCall === b.isCall ? a.id - b.id : a.isCall ? -1 : 1)
  );
  const head: Node = { id: -1, isCall: false, time: -Infinity };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  const lift = (c: Node) => {
    c.prev!.next = c.next;
    if (c.next) c.next.prev = c.prev;
    const r = c.match!;
    r.prev!.next = r.next;
    if (r.next) r.next.prev = r.prev;
  };
  const unlift = (c: Node) => {
    const r = c.match!;
    r.prev!.next = r;
    if (r.next) r.next.prev = r;
    c.prev!.next = c;
    if (c.next) c.next.prev = c;
  };
  const bits = new Uint32Array(Math.ceil(n / 32));
  const signature = ops.map((o) => JSON.stringify(o.op));
  const seen = new Set<string>();
  const stateKey = (s: RegValue) => `${bits.join(",")}|${s === null ? "\u0000" : s}`;
  /**
   * The operations that may go next: calls before the first return still in the list. Those of
   * known outcome are tried first: an op of unknown outcome is needed early only when nothing
   * else fits, and trying it first makes the search blow up with many of them.
   */
  const candidates = (): Node[] => {
    const known: Node[] = [];
    const unknown: Node[] = [];
    // Two ops of unknown outcome that are the same op (say incr by 2) and may both go next are
    // interchangeable: only the first is tried (symmetry), or the search would try every subset.
    const same = new Set<string>();
    for (let e = head.next; e !== undefined && e.isCall; e = e.next) {
      if (ops[e.id]!.completeMs !== Infinity) known.push(e);
      else if (!same.has(signature[e.id]!)) {
        same.add(signature[e.id]!);
        unknown.push(e);
      }
    }
    return known.concat(unknown);
  };
  interface Frame {
    readonly cands: Node[];
    i: number;
    readonly state: RegValue;
    /** The call placed from this frame (undone when the frame below it is exhausted). */
    placed?: Node;
  }
  const stack: Frame[] = [{ cands: candidates(), i: 0, state: initial }];
  let placedMax = 0;
  let iter = 0;
  for (;;) {
    if ((++iter & 0xfff) === 0 && Date.now() > deadlineMs) {
      return { ok: false, timedOut: true, placed: placedMax };
    }
    if (head.next === undefined) return { ok: true, timedOut: false, placed: n };
    const f = stack[stack.length - 1]!;
    let moved = false;
    while (f.i < f.cands.length) {
      const c = f.cands[f.i++]!;
      const op = ops[c.id]!;
      const next = step(f.state, op.op, op.completeMs === Infinity);
      if (next === undefined) continue;
      bits[c.id >> 5]! |= 1 << (c.id & 31);
      const k = stateKey(next);
      if (seen.has(k)) {
        bits[c.id >> 5]! &= ~(1 << (c.id & 31));
        continue;
      }
      seen.add(k);
      lift(c);
      f.placed = c;
      stack.push({ cands: candidates(), i: 0, state: next });
      placedMax = Math.max(placedMax, stack.length - 1);
      moved = true;
      break;
    }
    if (moved) continue;
    // Nothing fits here: undo the placement that led to this frame.
    stack.pop();
    const parent = stack[stack.length - 1];
    if (parent === undefined) return { ok: false, timedOut: false, placed: placedMax };
    const c = parent.placed!;
    bits[c.id >> 5]! &= ~(1 << (c.id & 31));
    unlift(c);
    parent.placed = undefined;
  }
}

/**
 * Check a whole history, key by key. `initial` gives each key's value before the history (absent
 * by default); `timeBudgetMs` bounds the whole search.
 */
export function checkLinearizable(
  history: readonly LinEntry[],
  opts: { initial?: (key: string) => RegValue; timeBudgetMs?: number } = {},
): LinVerdict {
  const deadlineMs = Date.now() + (opts.timeBudgetMs ?? 30_000);
  const byKey = new Map<string, LinEntry[]>();
  for (const e of history) {
    let list = byKey.get(e.key);
    if (list === undefined) byKey.set(e.key, list = []);
    list.push(e);
  }
  const badKeys: string[] = [];
  const detail: string[] = [];
  let timedOut = false;
  for (const [key, ops] of byKey) {
    const out = checkKey(ops, opts.initial?.(key) ?? null, deadlineMs);
    if (!out.ok) {
      badKeys.push(key);
      timedOut ||= out.timedOut;
      detail.push(
        `${key}: ${out.timedOut ? "search timed out" : "not linearizable"} ` +
          `(${out.placed} of ${ops.length} operations placed at most)`,
      );
    }
  }
  return { ok: badKeys.length === 0, timedOut, badKeys, detail };
}
