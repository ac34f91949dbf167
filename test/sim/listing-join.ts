/**
 * The end-to-end listing test of test/e2e/data-api.test.ts ("a listing of 5,000 keys in pages of
 * 100 ... while a node joins") on the simulator, so a seed replays it: an orchestrator and three
 * nodes (N=3), each started with --orchestrator only as the e2e tests start theirs; a replica
 * crashes and restarts empty, a fourth node joins; 5,000 keys written in batches of 1,000; then,
 * in half the seeds with slow and lost messages between members, a fifth node joins while a
 * client pages through the keys, 100 a page, each page through the next member in turn
 * (orchestrator included), 30–90 ms apart, asking again after a 503. `runListingJoin` returns
 * what the listing answered.
 * Not a test file itself (no `.test.` in the name).
 */
import { sleep, timeoutSignal } from "../../src/core/scheduler.ts";
import { ClusterSim } from "./cluster-sim.ts";
import { SimProc, stream } from "./sim-scheduler.ts";

export interface ListingJoinResult {
  readonly seed: number;
  /** The keys written (acknowledged by their batch). */
  readonly keys: readonly string[];
  /** The keys the listing answered, in order. */
  readonly got: readonly string[];
  /** One line per page: member, items, last key, cursor. */
  readonly trace: readonly string[];
  /** 503 answers asked again. */
  readonly retries: number;
  readonly events: readonly string[];
}

const KEYS = 5_000;
const BATCH = 1_000;
const PAGE = 100;
/** Simulated time the whole scenario may take. */
const END_MS = 120_000;

export async function runListingJoin(seed: number): Promise<ListingJoinResult> {
  // No drawn faults, no ttl keys, no listers of its own: the scenario below is the whole run.
  const sim = new ClusterSim(seed, [], ["--anti-entropy-interval", "1s"], false, false, false);
  const w = sim.world;
  const proc = new SimProc(w, "lister", stream(seed, "lister"));
  const r = proc.rng;
  const call = async (member: string, method: string, path: string, body?: string) => {
    const timer = timeoutSignal(proc, 30_000);
    try {
      const res = await sim.net.send("client", proc, `http://${member}${path}`, {
        method,
        signal: timer.signal,
        ...(body === undefined ? {} : { body }),
      }, false);
      return { status: res.status, body: await res.json() as Record<string, unknown> };
    } catch (e) {
      return { status: 0, body: { error: String(e) } };
    } finally {
      timer.done();
    }
  };
  const keys = Array.from({ length: KEYS }, (_, i) => `ls:${String(i).padStart(5, "0")}`);
  const got: string[] = [];
  const trace: string[] = [];
  let retries = 0;
  let done = false;
  const scenario = async () => {
    await sleep(proc, 3_000 + r.int(1_000));
    // A replica crashes and comes back empty, then a fourth node joins (the earlier tests).
    const victim = sim.nodes("up")[2]!;
    sim.crash(victim, 300 + r.int(700));
    await sleep(proc, 8_000 + r.int(2_000));
    sim.log(`join ${sim.addMember("node", 0, true).address}`);
    await sleep(proc, 10_000 + r.int(3_000));
    const writer = sim.nodes("up")[1]!.address;
    for (let i = 0; i < KEYS; i += BATCH) {
      const ops = keys.slice(i, i + BATCH).map((key) => ({ op: "put", key, value: key }));
      for (;;) {
        const a = await call(writer, "POST", "/kv/_batch", JSON.stringify({ ops }));
        const results = (a.body.results ?? []) as { status: string }[];
        if (a.status === 200 && results.every((x) => x.status === "SUCCESS")) break;
        await sleep(proc, 500);
      }
    }
    sim.log(`${KEYS} keys written`);
    const members = [...sim.members.values()].filter((m) => m.state === "up").map((m) => m.address);
    // A loaded machine: slow and lost messages between members while the listing runs.
    if (r.next() < 0.5) {
      sim.weather({ delayMaxMs: 20 + r.int(300), dropRate: r.next() * 0.1 }, 10_000, "weather");
    }
    // The fifth node joins while the listing runs, as the e2e test's launch does.
    w.at(r.int(2_500), () => sim.log(`join ${sim.addMember("node", 0, true).address}`));
    let cursor: string | null = null;
    let pages = 0;
    for (;;) {
      const at = members[pages % members.length]!;
      const q = cursor === null ? "" : `&cursor=${cursor}`;
      const a = await call(at, "GET", `/kv?prefix=ls:&limit=${PAGE}${q}`);
      if (a.status !== 200 && retries++ < 1_000) {
        await sleep(proc, 20);
        continue;
      }
      if (a.status !== 200) {
        trace.push(`${w.elapsedMs}ms ${at} ${a.status} ${JSON.stringify(a.body).slice(0, 200)}`);
        break;
      }
      const items = (a.body.items ?? []) as { key: string }[];
      got.push(...items.map((i) => i.key));
      cursor = (a.body.cursor ?? null) as string | null;
      trace.push(
        `${w.elapsedMs}ms ${at} ${items.length} ${items.at(-1)?.key} ${cursor ?? "end"}`,
      );
      pages++;
      if (cursor === null) break;
      await sleep(proc, 30 + r.int(61));
    }
    done = true;
  };
  w.at(0, () => {
    sim.addMember("orchestrator", 0);
    for (let i = 0; i < 3; i++) sim.addMember("node", 0, true);
    void scenario();
  });
  try {
    for (let t = 10_000; t <= END_MS && !done; t += 10_000) await w.runUntil(t);
  } finally {
    sim.stop();
  }
  return { seed, keys, got, trace, retries, events: sim.events };
}
