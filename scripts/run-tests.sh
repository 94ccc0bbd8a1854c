#!/usr/bin/env bash
# Runs test files under the suite's bounds (scripts/test.sh runs them all through this):
# - every test and hook has a time limit (SLOTFLOW_TEST_TIMEOUT_MS, default 10 minutes);
# - a file whose tests are over exits even if something it started still holds the event loop
#   (--test-force-exit), and what it started is tethered to it, so it dies with it;
# - the whole run has a limit too (SLOTFLOW_SUITE_LIMIT, default 60m, as for timeout(1)): a run
#   cut off there exits non-zero (124), never green.
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: scripts/run-tests.sh FILE.test.ts..." >&2; exit 2; }
# The tests run their TypeScript directly, which needs the Node node-env.sh puts first on PATH.
# shellcheck source=node-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-env.sh"
exec timeout --kill-after=30s "${SLOTFLOW_SUITE_LIMIT:-60m}" \
  node --disable-warning=ExperimentalWarning --test --test-force-exit \
  --test-concurrency="${SLOTFLOW_TEST_CONCURRENCY:-2}" \
  --test-timeout="${SLOTFLOW_TEST_TIMEOUT_MS:-600000}" "$@"
