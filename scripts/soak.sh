#!/usr/bin/env bash
# Longer campaigns than the suite runs. `npm run soak -- power-cut --trials N [--seed S]
# [--report FILE]` cuts the power of the lab's agent VMs N times at random upgrade phases
# (test/lab/vm-power-cut.test.ts) and writes what every cut showed to FILE (JSON; default
# test-output/power-cut-<seed>.json). The same seed replays the same campaign. `worker-kill`
# SIGKILLs the Temporal worker N times at random points of rollouts (test/faults/worker-kill.test.ts),
# `nats-kill` the nats-server N times (test/faults/nats-kill.test.ts); their reports go to
# test-output/<campaign>-<seed>.json. `agent-power-loss`: N SIGKILLs of real agents in random
# states and mid-write, with the page cache's unsynced writes thrown away at every power loss
# (test/agent/agent-crash.test.ts). `forgery`: N generated forged, tampered, expired, replayed,
# wrong-node and downgrade commands and tampered images sent to real agents, plus signed
# downgrades (test/agent/forgery.test.ts). `npm run soak -- fuzz [--cases N] [--seed S] [--report FILE]`
# runs every fuzz surface (test/fuzz/*) with N cases each (default 10000) and writes cases and
# failures per surface to FILE (default test-output/fuzz-<seed>.json); the same seed replays the
# same inputs. `all` runs every campaign with the same options, each with its own report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() {
  echo "usage: npm run soak -- power-cut|agent-power-loss|forgery|worker-kill|nats-kill|fuzz|all [--trials N] [--cases N] [--seed S] [--report FILE]" >&2
  exit 2
}
campaign="${1:-}"
case "$campaign" in power-cut | agent-power-loss | forgery | worker-kill | nats-kill | fuzz | all) ;; *) usage ;; esac
shift
trials=10 cases=10000 seed="" report=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --trials) trials="${2:-}"; shift 2 ;;
    --cases) cases="${2:-}"; shift 2 ;;
    --seed) seed="${2:-}"; shift 2 ;;
    --report) report="${2:-}"; shift 2 ;;
    *) echo "soak: unknown option '$1'" >&2; usage ;;
  esac
done
[[ "$trials" =~ ^[1-9][0-9]*$ ]] || { echo "soak: --trials wants a positive whole number, got '$trials'" >&2; exit 2; }
[[ "$cases" =~ ^[1-9][0-9]*$ ]] || { echo "soak: --cases wants a positive whole number, got '$cases'" >&2; exit 2; }
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
run_agent_power_loss() {
  local file minutes
  file="$(report_for agent-power-loss)"
  # Some 12 s of wall time a trial (six agents at once) on two cores at load 40; leave room.
  minutes=$((15 + trials / 4))
  echo "soak: agent-power-loss campaign, $trials trials, seed $seed, report $file, limit ${minutes}m" >&2
  SLOTFLOW_POWER_LOSS_TRIALS="$trials" SLOTFLOW_POWER_LOSS_SEED="$seed" SLOTFLOW_POWER_LOSS_REPORT="$file" \
    SLOTFLOW_SUITE_LIMIT="${minutes}m" SLOTFLOW_TEST_TIMEOUT_MS=$((minutes * 60000)) \
    bash "$ROOT/scripts/run-tests.sh" test/agent/agent-crash.test.ts
}
run_forgery() {
  local file minutes
  file="$(report_for forgery)"
  minutes=$((10 + trials / 20))
  echo "soak: forgery campaign, $trials cases, seed $seed, report $file, limit ${minutes}m" >&2
  SLOTFLOW_FORGERY_CASES="$trials" SLOTFLOW_FORGERY_SEED="$seed" SLOTFLOW_FORGERY_REPORT="$file" \
    SLOTFLOW_SUITE_LIMIT="${minutes}m" SLOTFLOW_TEST_TIMEOUT_MS=$((minutes * 60000)) \
    bash "$ROOT/scripts/run-tests.sh" test/agent/forgery.test.ts
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
fuzz_campaign() {
  local out lines status=0
  out="$(report_for fuzz)"
  lines="$(mktemp)"
  echo "soak: fuzz campaign, $cases cases per surface, seed $seed, report $out" >&2
  local started=$SECONDS
  # The slowest surfaces (real streams, real HTTP, files) take up to ~50 ms a case on a loaded host.
  local ms=$((cases * 100 > 600000 ? cases * 100 : 600000))
  SLOTFLOW_FUZZ_CASES="$cases" SLOTFLOW_FUZZ_SEED="$seed" SLOTFLOW_FUZZ_REPORT="$lines" \
    SLOTFLOW_TEST_CONCURRENCY=1 SLOTFLOW_TEST_TIMEOUT_MS="$ms" SLOTFLOW_SUITE_LIMIT="$((ms * 12 / 60000 + 10))m" bash "$ROOT/scripts/run-tests.sh" test/fuzz/*.test.ts || status=$?
  node -e '
    const [file, out, seed, cases, secs, status] = process.argv.slice(1);
    const fs = require("node:fs");
    const surfaces = fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const report = {
      campaign: "fuzz", seed: Number(seed), casesPerSurface: Number(cases), seconds: Number(secs),
      exitCode: Number(status), surfaces,
      failures: surfaces.reduce((n, s) => n + s.failures, 0),
      replay: `SLOTFLOW_FUZZ_SEED=${seed} SLOTFLOW_FUZZ_CASES=${cases} bash scripts/run-tests.sh test/fuzz/<file>.test.ts`,
    };
    fs.writeFileSync(out, JSON.stringify(report, null, 2) + "\n");
    for (const s of surfaces)
      console.error(`soak: ${s.surface.padEnd(24)} ${String(s.cases).padStart(7)} cases ${s.failures} failures ${(s.ms / 1000).toFixed(1)} s${s.path !== undefined ? `  replay: SLOTFLOW_FUZZ_SEED=${s.seed} SLOTFLOW_FUZZ_PATH=${s.path}` : ""}`);
    console.error(`soak: ${surfaces.length} surfaces, ${report.failures} failures in ${secs} s; report ${out}`);
  ' "$lines" "$out" "$seed" "$cases" "$((SECONDS - started))" "$status"
  rm -f "$lines"
  return "$status"
}

case "$campaign" in
  power-cut) run_power_cut ;;
  agent-power-loss) run_agent_power_loss ;;
  forgery) run_forgery ;;
  worker-kill) run_kill_campaign worker-kill SLOTFLOW_WORKER_KILL ;;
  nats-kill) run_kill_campaign nats-kill SLOTFLOW_NATS_KILL ;;
  fuzz) fuzz_campaign ;;
  all)
    status=0
    fuzz_campaign || status=$?
    run_power_cut || status=$?
    run_agent_power_loss || status=$?
    run_forgery || status=$?
    run_kill_campaign worker-kill SLOTFLOW_WORKER_KILL || status=$?
    run_kill_campaign nats-kill SLOTFLOW_NATS_KILL || status=$?
    exit "$status"
    ;;
esac
