/**
 * The planted bugs of `npm run mutants` (scripts/mutants.ts): each a precise source edit (search
 * text → replacement) in named files, and the tests that should catch it. The runner refuses to
 * start when a search text is not found exactly once, so a mutant never turns silently into a
 * no-op as the code changes: when that happens, fix the edit here (keep the bug the same).
 *
 * Each mutant is one real bug this kind of store can have (several this project once had). The
 * edits change the real source, so the same bug hits the unit tests, the in-memory HTTP tests,
 * the compiled ./dkv of the e2e tests and the simulator alike (unlike the simulator-only switches
 * of src/core/mutations.ts).
 *
 * Test sets: `tests` are paths given to `bun test`, each run on its own (a folder runs every file
 * in it); `sims` are runs of scripts/sim.ts. Add a new test file to every mutant it should catch
 * (the group constants below are shared); the runner checks every path exists.
 */

export interface Edit {
  /** File, relative to the repository root. */
  readonly file: string;
  /** Text that must occur exactly once in the file (after the mutant's earlier edits). */
  readonly search: string;
  readonly replace: string;
}

export interface SimRun {
  readonly seeds: number;
  /** First seed (default 1). */
  readonly first?: number;
  /** Fault kinds, comma-separated, as `--faults` (default: every kind). */
  readonly faults?: string;
}

export interface Mutant {
  /** Kebab-case name for `--only`. */
  readonly name: string;
  /** The bug, in one line. */
  readonly what: string;
  readonly edits: readonly Edit[];
  /** `bun test` paths (files or folders), each run on its own, in this order. */
  readonly tests: readonly string[];
  /** Simulator runs, after the tests. */
  readonly sims: readonly SimRun[];
}

/** Unit and in-memory HTTP tests: a few seconds, so every mutant runs them first. */
const FAST = ["test/unit", "test/http"];
/** The e2e files that check data (writes, reads, deletes) through faults. */
const E2E_DATA = [
  "test/e2e/self-healing.test.ts",
  "test/e2e/repair.test.ts",
  "test/e2e/deletes.test.ts",
  "test/e2e/guarantees.test.ts",
  "test/e2e/cluster.test.ts",
];
/** The simulator's default set: every fault kind. */
const SIM: SimRun = { seeds: 200 };

const COORDINATOR = "src/node/coordinator.ts";
const NO_READ_REPAIR: Edit = {
  file: COORDINATOR,
  search: "      if (!mutations.noRepair) this.#repair(best, out.ok);\n",
  replace: "      // planted: no read repair\n",
};

export const MUTANTS: readonly Mutant[] = [
  {
    name: "no-read-repair",
    what: "read repair does nothing",
    edits: [NO_READ_REPAIR],
    tests: [...FAST, ...E2E_DATA],
    sims: [SIM],
  },
  {
    name: "tombstones-not-handed-on",
    what: "hinted tombstones are dropped, and anti-entropy never moves tombstones",
    edits: [
      {
        file: "src/node/hint-delivery.ts",
        search: "batch.forEach((h) => this.store.apply(h.record));",
        replace:
          "batch.filter((h) => !h.record.tombstone).forEach((h) => this.store.apply(h.record));",
      },
      {
        file: "src/node/hint-delivery.ts",
        search: "records: batch.map((h) => toWire(h.record)),",
        replace: "records: batch.filter((h) => !h.record.tombstone).map((h) => toWire(h.record)),",
      },
      {
        file: "src/node/hint-delivery.ts",
        search: "hs.forEach((h) => this.store.apply(h.record));",
        replace:
          "hs.filter((h) => !h.record.tombstone).forEach((h) => this.store.apply(h.record));",
      },
      {
        file: "src/node/hint-delivery.ts",
        search: "records: hs.map((h) => toWire(h.record)),",
        replace: "records: hs.filter((h) => !h.record.tombstone).map((h) => toWire(h.record)),",
      },
      {
        file: "src/node/anti-entropy.ts",
        search: "        const r = fromWire(w);\n",
        replace: "        const r = fromWire(w);\n        if (r.tombstone) continue; // planted\n",
      },
      {
        file: "src/node/anti-entropy.ts",
        search: "records: records.slice(i, end).map(toWire),",
        replace: "records: records.slice(i, end).filter((r) => !r.tombstone).map(toWire),",
      },
    ],
    tests: [...FAST, ...E2E_DATA],
    sims: [SIM],
  },
  {
    name: "read-first-answer",
    what: "a read returns the first answer instead of the newest",
    edits: [{
      file: COORDINATOR,
      search: "    let best = newest(out.ok.map((a) => a.record));\n",
      replace: "    let best = out.ok[0]?.record; // planted: the first answer, not the newest\n",
    }],
    tests: [...FAST, ...E2E_DATA],
    sims: [SIM],
  },
  {
    name: "lose-every-100th-write",
    what: "every 100th write a coordinator acknowledges is never sent to any replica",
    edits: [
      {
        file: COORDINATOR,
        search: "  readRepairs = 0;\n",
        replace: "  readRepairs = 0;\n  #plantedWrites = 0;\n",
      },
      {
        file: COORDINATOR,
        search: "      : { key, value, version, tombstone, expiresAt };\n",
        replace: "      : { key, value, version, tombstone, expiresAt };\n" +
          "    if (++this.#plantedWrites % 100 === 0) return { record, hadLive: false }; // planted\n",
      },
    ],
    tests: [...FAST, ...E2E_DATA],
    sims: [SIM],
  },
  {
    name: "no-repair-no-anti-entropy",
    what: "read repair off and anti-entropy off",
    edits: [
      NO_READ_REPAIR,
      {
        file: "src/node/anti-entropy.ts",
        search: "    if (this.#running || ring === undefined || mutations.noRepair) return;\n",
        replace: "    return; // planted: anti-entropy rounds do nothing\n",
      },
    ],
    tests: [...FAST, ...E2E_DATA],
    sims: [SIM],
  },
  {
    name: "quorum-one-short",
    what: "quorum bookkeeping settles one acknowledgement too early",
    edits: [{
      file: "src/core/quorum.ts",
      search: "          if (ok.length >= need) finish(true);\n",
      replace: "          if (ok.length + 1 >= need) finish(true); // planted: one ack too few\n",
    }],
    tests: [...FAST, ...E2E_DATA],
    sims: [SIM],
  },
  {
    name: "gc-ignores-grace",
    what: "tombstone collection ignores --tombstone-grace (collects every tombstone it sees)",
    edits: [{
      file: "src/node/data-node.ts",
      search: "      this.now() - lead - this.config.timers.tombstoneGraceMs,\n",
      replace: "      this.now() - lead, // planted: no grace\n",
    }],
    tests: [...FAST, ...E2E_DATA],
    sims: [SIM],
  },
  {
    name: "drop-before-stream-acked",
    what: "a mover drops a partition it hands off before its stream is acknowledged",
    edits: [{
      file: "src/node/rebalancer.ts",
      search: "    if (!(await this.#stream(task, records, generation))) return;\n",
      replace:
        "    if (task.drop) this.store.dropPartition(p); // planted: dropped before the acks\n" +
        "    if (!(await this.#stream(task, records, generation))) return;\n",
    }],
    tests: [...FAST, ...E2E_DATA, "test/e2e/lifecycle.test.ts", "test/e2e/membership.test.ts"],
    sims: [SIM, { seeds: 100, first: 150, faults: "join,leave,delay" }],
  },
  {
    name: "hlc-ignores-remote",
    what: "the hybrid logical clock ignores a remote version (observe does nothing)",
    edits: [{
      file: "src/core/hlc.ts",
      search: "export function observe(state: HlcState, remote: Version, nowMs: number): void {\n",
      replace:
        "export function observe(state: HlcState, remote: Version, nowMs: number): void {\n" +
        "  return; // planted: the remote version is ignored\n",
    }],
    tests: [...FAST, "test/e2e/cluster.test.ts"],
    sims: [SIM],
  },
  {
    name: "digest-skips-last-bucket",
    what: "a partition's digest leaves out its last bucket",
    edits: [{
      file: "src/core/digest.ts",
      search:
        "    for (let b = 0; b < BUCKETS; b++) {\n      const i = partition * BUCKETS + b;\n" +
        "      sum = ",
      replace:
        "    for (let b = 0; b < BUCKETS - 1; b++) { // planted: the last bucket is skipped\n" +
        "      const i = partition * BUCKETS + b;\n      sum = ",
    }],
    tests: [...FAST, "test/e2e/self-healing.test.ts", "test/e2e/repair.test.ts"],
    sims: [SIM],
  },
  {
    name: "gossip-ignores-higher-incarnation",
    what: "membership merge ignores news with a higher incarnation",
    edits: [{
      file: "src/core/swim-merge.ts",
      search: "  if (a.incarnation !== b.incarnation) return a.incarnation > b.incarnation;\n",
      replace: "  if (a.incarnation !== b.incarnation) return false; // planted\n",
    }],
    tests: [...FAST, "test/sim/swim.test.ts", "test/e2e/gossip.test.ts"],
    sims: [SIM],
  },
];
