/**
 * The HTTP fuzz run (issue 9, part 7; test/support/fuzz.ts): an orchestrator and 3 nodes with a
 * cluster secret get DKV_FUZZ_REQUESTS (default 10,000) malformed and hostile requests drawn
 * from DKV_FUZZ_SEED (default below), over raw TCP and fetch. It passes with no 5xx (a 503 FAILED
 * from /kv/{key} or /all-nodes/{key} aside), every process alive, every node UP in every
 * member's /all-nodes, every key written before the run read back through every member, no
 * unhandled error in any log, and each member's RSS at most 512 MiB at the end.
 * Longer runs: `npm run fuzz -- --requests 100000 --seed 7`.
 */
import { expect, test } from "bun:test";
import { failures, formatResult, fuzzRealCluster } from "../support/fuzz.ts";

const SEED = Number(process.env.DKV_FUZZ_SEED ?? 20261126);
const REQUESTS = Number(process.env.DKV_FUZZ_REQUESTS ?? 10_000);

test(
  `HTTP fuzz: ${REQUESTS} hostile requests (seed ${SEED}) against a signed 3-node cluster`,
  async () => {
    const res = await fuzzRealCluster({ seed: SEED, requests: REQUESTS, log: console.log });
    console.log(formatResult(res));
    const bad = failures(res);
    if (bad.length > 0) {
      console.log(
        `replay: DKV_FUZZ_SEED=${SEED} npx bun test test/e2e/fuzz.test.ts, or npm run fuzz -- --seed ${SEED} --only <index>`,
      );
    }
    expect(bad).toEqual([]);
    expect(res.report.sent).toBe(REQUESTS);
  },
  600_000,
);
