#!/usr/bin/env bash
# The whole test suite, set-up included: provisioning, format check, lint, type check, then
# every test (unit, integration against a real Temporal dev server and nats-server, end to end).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# shellcheck source=node-env.sh
source "$ROOT/scripts/node-env.sh"
cd "$ROOT"
echo "== format check (prettier)"
npx --no-install prettier --check . --log-level warn
echo "== lint (eslint)"
npx --no-install eslint .
echo "== type check (tsc)"
npx --no-install tsc -p tsconfig.json
echo "== tests (node --test)"
mkdir -p test-output
files=$(find test -name '*.test.ts' | sort)
# shellcheck disable=SC2086
exec bash "$ROOT/scripts/run-tests.sh" $files
