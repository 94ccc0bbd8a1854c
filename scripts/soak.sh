#!/usr/bin/env bash
# Longer campaigns than the suite runs. `npm run soak -- power-cut --trials N [--seed S]
# [--report FILE]` cuts the power of the lab's agent VMs N times at random upgrade phases
# (test/lab/vm-power-cut.test.ts) and writes what every cut showed to FILE (JSON; default
# test-output/power-cut-<seed>.json). The same seed replays the same campaign. `worker-kill`
# SIGKILLs the Temporal worker N times at random points of rollouts (test/faults/worker-kill.test.ts),
# `nats-kill` the nats-server N times (test/faults/nats-kill.test.ts); their reports go to
# test-output/<campaign>-<seed>.json. `all` runs every campaign with the same options.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() {
  echo "usage: npm run soak -- power-cut|worker-kill|nats-kill|all --trials N [--seed S] [--report FILE]" >&2
  exit 2
}
case "${1:-}" in power-cut | worker-kill | nats-kill | all) ;; *) usage ;; esac
campaign="$1"
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
# The report of one campaign: --report as given, or (with `all`) beside it, one per campaign.
report_for() {
  if [ -z "$report" ]; then echo "$ROOT/test-output/$1-$seed.json"
  elif [ "$campaign" = all ]; then echo "${report%.json}-$1.json"
  else echo "$report"; fi
}
run_power_cut() {
  local file minutes
  file="$(report_for power-cut)"
  # A cut and the boot after it take up to three minutes on a loaded host; leave room for all.
  minutes=$((30 + trials * 4))
  echo "soak: power-cut campaign, $trials cuts, seed $seed, report $file, limit ${minutes}m" >&2
  SLOTFLOW_POWER_CUTS="$trials" SLOTFLOW_POWER_CUT_SEED="$seed" SLOTFLOW_POWER_CUT_REPORT="$file" \
    SLOTFLOW_SUITE_LIMIT="${minutes}m" SLOTFLOW_TEST_TIMEOUT_MS=$((minutes * 60000)) \
    bash "$ROOT/scripts/run-tests.sh" test/lab/vm-power-cut.test.ts
}
# A worker or nats-server kill, its restart and the rollout's catching up: up to three minutes.
run_kill_campaign() {
  local name="$1" prefix="$2" file minutes
  file="$(report_for "$name")"
  minutes=$((20 + trials * 3))
  echo "soak: $name campaign, $trials kills, seed $seed, report $file, limit ${minutes}m" >&2
  env "${prefix}S=$trials" "${prefix}_SEED=$seed" "${prefix}_REPORT=$file" \
    SLOTFLOW_SUITE_LIMIT="${minutes}m" SLOTFLOW_TEST_TIMEOUT_MS=$((minutes * 60000)) \
    bash "$ROOT/scripts/run-tests.sh" "test/faults/$name.test.ts"
}
case "$campaign" in
  power-cut) run_power_cut ;;
  worker-kill) run_kill_campaign worker-kill SLOTFLOW_WORKER_KILL ;;
  nats-kill) run_kill_campaign nats-kill SLOTFLOW_NATS_KILL ;;
  all)
    run_power_cut
    run_kill_campaign worker-kill SLOTFLOW_WORKER_KILL
    run_kill_campaign nats-kill SLOTFLOW_NATS_KILL
    ;;
esac
