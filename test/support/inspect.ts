/**
 * Reading a real cluster's state for end-to-end assertions: who lists whom with which state, a
 * node's own figures, what each node stores, and whether every key sits on exactly its replicas.
 */
import { http, type Proc } from "./cluster.ts";

/** One row of GET /all-nodes (src/http/public-routes.ts `memberJson`). */
export interface MemberRow {
  ip: string;
  port: number;
  id: string;
  role: "orchestrator" | "node";
  status: "UP" | "SUSPECT" | "DOWN" | "LEFT";
  orchestrator: boolean;
  inRing: boolean;
  incarnation: number;
}

/** The members `address` lists in GET /all-nodes. */
export async function members(address: string): Promise<MemberRow[]> {
  const r = await http("GET", address, "/all-nodes");
  if (r.status !== 200) throw new Error(`/all-nodes on ${address}: ${r.status}`);
  return r.body.allNodes as MemberRow[];
}

/** True when every one of `observers` lists `id` with `status` (and `inRing`, when given). */
export async function listedAs(
  observers: readonly Proc[],
  id: string,
  status: MemberRow["status"],
  inRing?: boolean,
): Promise<boolean> {
  for (const o of observers) {
    const m = (await members(o.address)).find((x) => x.id === id);
    if (m === undefined || m.status !== status) return false;
    if (inRing !== undefined && m.inRing !== inRing) return false;
  }
  return true;
}

/** A node's own figures: GET /internal/v1/status (docs/protocol.md, `NodeStatus`). */
// deno-lint-ignore no-explicit-any
export async function figures(p: Proc): Promise<any> {
  const r = await http("GET", p.address, "/internal/v1/status");
  if (r.status !== 200) throw new Error(`/internal/v1/status on ${p.name}: ${r.status}`);
  return r.body;
}

/** What `p` itself stores (GET /kv/all-data: live keys only). */
export async function allData(p: Proc): Promise<Record<string, string>> {
  const r = await http("GET", p.address, "/kv/all-data");
  if (r.status !== 200) throw new Error(`/kv/all-data on ${p.name}: ${r.status}`);
  return r.body;
}

/** Write `count` keys `${prefix}-${i}` through `at` (quorum); every write must answer 200. */
export async function writeKeys(
  at: Proc,
  prefix: string,
  count: number,
  value = (i: number) => `${prefix}-value-${i}`,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const key = `${prefix}-${i}`;
    const r = await http("PUT", at.address, `/kv/${key}`, value(i));
    if (r.status !== 200) {
      throw new Error(`PUT ${key} through ${at.name}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    out.set(key, value(i));
  }
  return out;
}

/**
 * What is wrong with placement: each key of `expected` must be held, with its expected value, by
 * exactly the replicas `observer` names for it (GET /all-nodes/{key}), and every replica must be
 * one of `nodes` (a node's id is its address). Empty when all is well.
 */
export async function placementProblems(
  observer: Proc,
  nodes: readonly Proc[],
  expected: ReadonlyMap<string, string>,
): Promise<string[]> {
  const stores = new Map<string, Record<string, string>>();
  for (const n of nodes) stores.set(n.address, await allData(n));
  const problems: string[] = [];
  for (const [key, value] of expected) {
    const r = await http("GET", observer.address, `/all-nodes/${encodeURIComponent(key)}`);
    const replicas = (r.body.allNodes as MemberRow[]).map((m) => m.id);
    for (const id of replicas) {
      const store = stores.get(id);
      if (store === undefined) problems.push(`${key}: replica ${id} is not a live node`);
      else if (store[key] !== value) problems.push(`${key}: replica ${id} has ${store[key]}`);
    }
    for (const [id, store] of stores) {
      if (!replicas.includes(id) && key in store) problems.push(`${key}: non-replica ${id} has it`);
    }
  }
  return problems;
}
