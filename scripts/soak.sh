#!/usr/bin/env bash
# Longer campaigns than the suite runs. `npm run soak -- power-cut --trials N [--seed S]
# [--report FILE]` cuts the power of the lab's agent VMs N times at random upgrade phases
# (test/lab/vm-power-cut.test.ts) and writes what every cut showed to FILE (JSON; default
# test-output/power-cut-<seed>.json). The same seed replays the same campaign. `all` runs every
# campaign there is (power-cut, so far) with the same options.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() {
  echo "usage: npm run soak -- power-cut|all --trials N [--seed S] [--report FILE]" >&2
  exit 2
}
case "${1:-}" in power-cut | all) ;; *) usage ;; esac
shift
trials=10 seed="" report=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --trials) trials="${2:-}"; shift 2 ;;
    --seed) seed="${2:-}"; shift 2 ;;
    --report) report="${2:-}"; shift 2 ;;
    *) echo "soak: unknown option '$1'" >&2; usage ;;
  esac
done
[[ "$trials" =~ ^[1-9][0-9]*$ ]] || { echo "soak: --trials wants a positive whole number, got '$trials'" >&2; exit 2; }
[ -z "$seed" ] || [[ "$seed" =~ ^[0-9]+$ ]] || { echo "soak: --seed wants a whole number, got '$seed'" >&2; exit 2; }
[ -n "$seed" ] || seed=$((RANDOM * 32768 + RANDOM))
mkdir -p "$ROOT/test-output"
[ -n "$report" ] || report="$ROOT/test-output/power-cut-$seed.json"
bash "$ROOT/scripts/setup.sh"
# shellcheck source=node-env.sh
source "$ROOT/scripts/node-env.sh"
cd "$ROOT"
# A cut and the boot after it take up to three minutes on a loaded host; leave room for all.
minutes=$((30 + trials * 4))
echo "soak: power-cut campaign, $trials cuts, seed $seed, report $report, limit ${minutes}m" >&2
SLOTFLOW_POWER_CUTS="$trials" SLOTFLOW_POWER_CUT_SEED="$seed" SLOTFLOW_POWER_CUT_REPORT="$report" \
  SLOTFLOW_SUITE_LIMIT="${minutes}m" SLOTFLOW_TEST_TIMEOUT_MS=$((minutes * 60000)) \
  bash "$ROOT/scripts/run-tests.sh" test/lab/vm-power-cut.test.ts
