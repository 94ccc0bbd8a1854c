#!/usr/bin/env bash
# Longer campaigns than the suite runs, each replayable from the seed it prints, each writing a
# JSON report (--report FILE; default test-output/<campaign>-<seed>.json):
# - `power-cut`: cuts the power of the lab's agent VMs N times at random upgrade phases
#   (test/lab/vm-power-cut.test.ts).
# - `agent-power-loss`: N SIGKILLs of real agents in random states and mid-write, with the page
#   cache's unsynced writes thrown away at every power loss (test/agent/agent-crash.test.ts).
# - `forgery`: N generated forged, tampered, expired, replayed, wrong-node and downgrade commands
#   and tampered images sent to real agents, plus signed downgrades (test/agent/forgery.test.ts).
# `all` runs every campaign with the same options (--report then names a directory).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CAMPAIGNS="power-cut agent-power-loss forgery"
usage() {
  echo "usage: npm run soak -- ${CAMPAIGNS// /|}|all --trials N [--seed S] [--report FILE]" >&2
  exit 2
}
campaign="${1:-}"
case "$campaign" in power-cut | agent-power-loss | forgery | all) ;; *) usage ;; esac
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
bash "$ROOT/scripts/setup.sh"
# shellcheck source=node-env.sh
source "$ROOT/scripts/node-env.sh"
cd "$ROOT"

# The report file of one campaign: --report as given, or a file in the --report directory (all).
report_of() {
  if [ -z "$report" ]; then echo "$ROOT/test-output/$1-$seed.json"
  elif [ "$campaign" = all ]; then mkdir -p "$report" && echo "$report/$1-$seed.json"
  else echo "$report"; fi
}

run_power_cut() {
  local file minutes
  file="$(report_of power-cut)"
  # A cut and the boot after it take up to three minutes on a loaded host; leave room for all.
  minutes=$((30 + trials * 4))
  echo "soak: power-cut campaign, $trials cuts, seed $seed, report $file, limit ${minutes}m" >&2
  SLOTFLOW_POWER_CUTS="$trials" SLOTFLOW_POWER_CUT_SEED="$seed" SLOTFLOW_POWER_CUT_REPORT="$file" \
    SLOTFLOW_SUITE_LIMIT="${minutes}m" SLOTFLOW_TEST_TIMEOUT_MS=$((minutes * 60000)) \
    bash "$ROOT/scripts/run-tests.sh" test/lab/vm-power-cut.test.ts
}

run_agent_power_loss() {
  local file minutes
  file="$(report_of agent-power-loss)"
  # Some 12 s of wall time a trial (six agents at once) on two cores at load 40; leave room.
  minutes=$((15 + trials / 4))
  echo "soak: agent-power-loss campaign, $trials trials, seed $seed, report $file, limit ${minutes}m" >&2
  SLOTFLOW_POWER_LOSS_TRIALS="$trials" SLOTFLOW_POWER_LOSS_SEED="$seed" SLOTFLOW_POWER_LOSS_REPORT="$file" \
    SLOTFLOW_SUITE_LIMIT="${minutes}m" SLOTFLOW_TEST_TIMEOUT_MS=$((minutes * 60000)) \
    bash "$ROOT/scripts/run-tests.sh" test/agent/agent-crash.test.ts
}

run_forgery() {
  local file minutes
  file="$(report_of forgery)"
  minutes=$((10 + trials / 20))
  echo "soak: forgery campaign, $trials cases, seed $seed, report $file, limit ${minutes}m" >&2
  SLOTFLOW_FORGERY_CASES="$trials" SLOTFLOW_FORGERY_SEED="$seed" SLOTFLOW_FORGERY_REPORT="$file" \
    SLOTFLOW_SUITE_LIMIT="${minutes}m" SLOTFLOW_TEST_TIMEOUT_MS=$((minutes * 60000)) \
    bash "$ROOT/scripts/run-tests.sh" test/agent/forgery.test.ts
}

if [ "$campaign" = all ]; then
  for c in $CAMPAIGNS; do "run_${c//-/_}"; done
else
  "run_${campaign//-/_}"
fi
