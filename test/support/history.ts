/**
 * A history checker for end-to-end fault tests. Concurrent writers each own a set of keys and
 * write (or delete) them in turn through random live members, recording every acknowledged
 * write with the version the cluster gave it. After the cluster settles, `verify` demands that
 * every acknowledged write — or a newer one for the same key — is what a quorum read returns on
 * every member, that acknowledged deletes stay deleted, and that every live key sits on exactly
 * its N replicas with the same value (compare /kv/all-data of every node with /all-nodes/{key}).
 */
import { parseVersion, type Version } from "../../src/core/hlc.ts";
import { compareVersions } from "../../src/core/hlc.ts";
import { http } from "./cluster.ts";

export interface Acked {
  readonly value: string | null; // null = deleted
  readonly version: Version | null; // a delete's version is not reported
  readonly seq: number;
}

export class History {
  /** Last acknowledged operation per key (each key has one writer, so this is its newest). */
  readonly acked = new Map<string, Acked>();
  /** Keys written at least once (acknowledged or not). */
  readonly touched = new Set<string>();
  /** Keys whose latest write failed: it may or may not have landed, so its value is uncertain. */
  readonly uncertain = new Set<string>();
  okWrites = 0;
  failedWrites = 0;
  okReads = 0;
  failedReads = 0;
  /** Reads that returned something older than a write acknowledged before the read began. */
  readonly staleReads: string[] = [];
}

export interface WriterOptions {
  /** Members to send requests to (called before every request, so it can change). */
  targets: () => readonly string[];
  writers: number;
  keysPerWriter: number;
  /** Fraction of operations that are reads (of the writer's own keys). */
  readFraction?: number;
  /** Key prefix, so scenarios never share keys. */
  prefix: string;
}

/** Start writers; call the returned stop() to end them and wait. */
export function startWriters(history: History, opts: WriterOptions): { stop: () => Promise<void> } {
  let running = true;
  const loops = Array.from({ length: opts.writers }, (_, w) =>
    (async () => {
      let seq = 0;
      while (running) {
        for (let k = 0; k < opts.keysPerWriter && running; k++) {
          const key = `${opts.prefix}-w${w}-k${k}`;
          const targets = opts.targets();
          const at = targets[Math.floor(Math.random() * targets.length)]!;
          seq++;
          if (Math.random() < (opts.readFraction ?? 0.2) && history.acked.has(key)) {
            await readOnce(history, at, key);
            continue;
          }
          const value = `${key}-s${seq}`;
          history.touched.add(key);
          try {
            const r = await http("POST", at, `/kv/${key}`, value);
            if (r.status === 200) {
              history.okWrites++;
              history.acked.set(key, { value, version: parseVersion(r.body.version)!, seq });
              history.uncertain.delete(key);
            } else {
              history.failedWrites++;
              history.uncertain.add(key);
            }
          } catch {
            history.failedWrites++;
            history.uncertain.add(key);
          }
        }
      }
    })());
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function readOnce(history: History, at: string, key: string): Promise<void> {
  const before = history.acked.get(key);
  try {
    const r = await http("GET", at, `/kv/${key}`);
    if (r.status !== 200 && r.status !== 404) {
      history.failedReads++;
      return;
    }
    history.okReads++;
    if (before?.version && before.value !== null) {
      const got = r.status === 200 ? parseVersion(r.body.version) : undefined;
      if (got === undefined || compareVersions(got, before.version) < 0) {
        history.staleReads.push(
          `${key} at ${at}: got ${r.status === 200 ? r.body.version : 404}, acked ${
            JSON.stringify(before.version)
          }`,
        );
      }
    }
  } catch {
    history.failedReads++;
  }
}

/** Write each key once through random members (keys no writer touches again). */
export async function writeKeys(
  history: History,
  keys: readonly string[],
  targets: readonly string[],
): Promise<void> {
  await Promise.all(keys.map(async (key) => {
    const at = targets[Math.floor(Math.random() * targets.length)]!;
    const value = `${key}-once`;
    history.touched.add(key);
    const r = await http("POST", at, `/kv/${key}`, value).catch(() => undefined);
    if (r?.status === 200) {
      history.okWrites++;
      history.acked.set(key, { value, version: parseVersion(r.body.version)!, seq: 0 });
    } else {
      history.failedWrites++;
      history.uncertain.add(key);
    }
  }));
}

/** Delete keys through random members, recording acknowledged deletes. */
export async function deleteKeys(
  history: History,
  keys: readonly string[],
  targets: readonly string[],
): Promise<string[]> {
  const deleted: string[] = [];
  for (const key of keys) {
    const at = targets[Math.floor(Math.random() * targets.length)]!;
    const r = await http("DELETE", at, `/kv/${key}`);
    if (r.status === 200) {
      history.acked.set(key, { value: null, version: null, seq: Number.MAX_SAFE_INTEGER });
      deleted.push(key);
    }
  }
  return deleted;
}

export interface Verdict {
  ok: boolean;
  problems: string[];
}

/**
 * Placement, read from /kv/all-data only (no reads through the API, so read repair cannot do the
 * healing): every live key sits on exactly its replicas (per /all-nodes/{key}) with its newest
 * acknowledged value (or, if its last write failed, the same value on every replica), and
 * deleted keys are nowhere.
 */
export async function verifyPlacement(
  history: History,
  member: string,
  nodes: readonly string[],
): Promise<Verdict> {
  const problems: string[] = [];
  const data = new Map<string, Record<string, string>>();
  for (const n of nodes) data.set(n, (await http("GET", n, "/kv/all-data")).body);
  for (const key of history.touched) {
    const acked = history.acked.get(key);
    const holders = nodes.filter((n) => Object.hasOwn(data.get(n)!, key)).sort();
    if (acked?.value === null) {
      if (holders.length) {
        problems.push(`${key}: deleted but still in /kv/all-data of ${holders.join(", ")}`);
      }
      continue;
    }
    if (acked === undefined && holders.length === 0) continue; // never acknowledged, never landed
    const r = await http("GET", member, `/all-nodes/${key}`);
    const replicas = (r.body.allNodes as { id: string }[]).map((m) => m.id).sort();
    if (JSON.stringify(holders) !== JSON.stringify(replicas)) {
      problems.push(
        `${key}: on [${holders.join(", ")}] but its replicas are [${replicas.join(", ")}]`,
      );
    }
    const values = new Set(holders.map((n) => data.get(n)![key]));
    if (values.size > 1) problems.push(`${key}: replicas disagree: ${[...values].join(" / ")}`);
    if (acked && !history.uncertain.has(key) && !values.has(acked.value!)) {
      problems.push(
        `${key}: acknowledged ${acked.value} but replicas hold ${
          [...values].join(" / ") || "nothing"
        }`,
      );
    }
  }
  return { ok: problems.length === 0, problems };
}

/**
 * Reads: every acknowledged write (or a newer one) is what a quorum read returns on every
 * member, and acknowledged deletes read as 404 everywhere.
 */
export async function verifyReads(history: History, members: readonly string[]): Promise<Verdict> {
  const problems: string[] = [];
  for (const [key, acked] of history.acked) {
    for (const m of members) {
      const r = await http("GET", m, `/kv/${key}`);
      if (acked.value === null) {
        if (r.status !== 404) {
          problems.push(`${key}: deleted but ${m} answered ${r.status} ${JSON.stringify(r.body)}`);
        }
        continue;
      }
      if (r.status !== 200) {
        problems.push(`${key}: acked ${acked.value} but ${m} answered ${r.status}`);
        continue;
      }
      const got = parseVersion(r.body.version)!;
      const c = compareVersions(got, acked.version!);
      if (c < 0 || (c === 0 && r.body.value !== acked.value)) {
        problems.push(
          `${key}: acked ${acked.value}@${
            JSON.stringify(acked.version)
          } but ${m} read ${r.body.value}@${r.body.version}`,
        );
      }
    }
  }
  return { ok: problems.length === 0, problems };
}
