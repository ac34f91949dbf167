/**
 * npm run fuzz -- [--requests N] [--seed S] [--only I,J,...] [--concurrency C] [--findings K]
 *
 * The HTTP fuzz run of test/e2e/fuzz.test.ts, longer or replayed: starts an orchestrator and 3
 * nodes with a cluster secret (./dkv; `npm run build` first), writes keys, sends N hostile
 * requests drawn from seed S (test/support/fuzz.ts), checks the cluster and prints the figures.
 * `--only` sends just those request indexes (a finding's `replay` line). Exit code 1 on any
 * failure, 2 on bad arguments.
 */
import { parseArgs } from "node:util";
import { failures, formatReport, formatResult, fuzzRealCluster } from "../test/support/fuzz.ts";

let values;
try {
  ({ values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      requests: { type: "string", default: process.env.DKV_FUZZ_REQUESTS ?? "10000" },
      seed: {
        type: "string",
        default: process.env.DKV_FUZZ_SEED ?? String(Date.now() % 1_000_000),
      },
      only: { type: "string" },
      concurrency: { type: "string", default: "16" },
      findings: { type: "string", default: "20" },
    },
  }));
} catch (e) {
  console.error(`fuzz: ${(e as Error).message}`);
  process.exit(2);
}
const num = (name: string, text: string): number => {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`fuzz: --${name} must be a whole number (got '${text}')`);
    process.exit(2);
  }
  return n;
};
const seed = num("seed", values.seed);
const requests = num("requests", values.requests);
const only = values.only?.split(",").map((s) => num("only", s.trim()));
const res = await fuzzRealCluster({
  seed,
  requests,
  only,
  concurrency: num("concurrency", values.concurrency),
  log: (l) => console.log(l),
});
console.log(
  formatResult(res).replace(
    formatReport(res.report),
    formatReport(res.report, num("findings", values.findings)),
  ),
);
const bad = failures(res);
for (const b of bad.slice(0, 50)) console.log(`FAIL ${b}`);
if (bad.length > 50) console.log(`... and ${bad.length - 50} more`);
console.log(
  bad.length === 0 ? "fuzz: PASS" : `fuzz: FAIL (${bad.length}); replay with --seed ${seed}`,
);
process.exit(bad.length === 0 ? 0 : 1);
