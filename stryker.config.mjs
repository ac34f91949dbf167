// Stryker (`npm run mutants:stryker`): generated mutants of the pure core (src/core), each run
// against the unit tests. The planted, whole-system bugs are `npm run mutants` (scripts/mutants.ts);
// docs/testing.md says what each found.
//
// Eight core files and their unit tests: 653 mutants, about 9 minutes on the 2-core machine
// (every mutant is one full run of the command below; a killed mutant stops at its first failing
// test). The rest of src/core is left out on purpose: swim.ts alone has more mutants than these
// eight, and hash.ts (hashing in hot loops) slows every instrumented test run tenfold.
const core = [
  "hlc",
  "record",
  "quorum",
  "digest",
  "swim-merge",
  "placement",
  "move-planner",
  "hint-store",
];
// The unit tests of those files, and two more that exercise them (ring: placement; clock-guard:
// hlc). store.test.ts is left out: it takes 4 s per run once digest.ts is instrumented.
const tests = [...core, "ring", "clock-guard"].map((f) => `test/unit/${f}.test.ts`);

export default {
  testRunner: "command",
  commandRunner: { command: `bun test --bail ${tests.join(" ")}` },
  mutate: core.map((f) => `src/core/${f}.ts`),
  // The command runner cannot tell which test covers which mutant: every mutant runs the command.
  coverageAnalysis: "off",
  // One test process at a time: the machine has two cores and other work on them.
  concurrency: 1,
  // A mutant that loops forever (a bound turned off) is a timeout, not a hang.
  timeoutMS: 10_000,
  // Stryker rewrites tsconfig.json through TypeScript's JavaScript API, which TypeScript 7 (the
  // native compiler) no longer has: point it at a file that does not exist so it leaves it alone
  // (Bun runs the mutated .ts files without a type check anyway).
  tsconfigFile: "tsconfig.stryker-none.json",
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: "tmp/stryker/report.html" },
  jsonReporter: { fileName: "tmp/stryker/report.json" },
  tempDirName: "tmp/stryker/sandbox",
  cleanTempDir: "always",
  // Not copied into Stryker's sandbox: the 100 MB ./dkv and scratch output.
  ignorePatterns: ["/dkv", "/tmp", "/.dkv-demo", "*.log"],
};
