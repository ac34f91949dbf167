#!/usr/bin/env bash
# npm test (after the build, pretest): every suite as nodes run by default, with peer calls over
# the TCP peer link; then the e2e suites again with every peer call over HTTP
# (DKV_PEER_TRANSPORT=http: each node started with --peer-port off), so each transport passes
# them all. Arguments go to the first run only (a file or a test name), and then the second is
# skipped. Each run ends with bun's own "N pass" / "N fail" lines (.ci/run adds them up).
set -u
cd "$(dirname "$0")/.."
bun test --timeout 120000 "$@"
first=$?
[ "$#" -gt 0 ] && exit "$first"
echo
echo "=== the e2e suites again, every peer call over HTTP (DKV_PEER_TRANSPORT=http)"
DKV_PEER_TRANSPORT=http bun test --timeout 120000 test/e2e
second=$?
[ "$first" -eq 0 ] && [ "$second" -eq 0 ]
