#!/usr/bin/env bash
# `npm run bench [-- --quick | --tiny]`: the benchmark runner under a Node.js >= 22.18
# (scripts/node-env.sh finds or installs one), from the repository root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/node-env.sh
source "$ROOT/scripts/node-env.sh"
cd "$ROOT"
exec node --disable-warning=ExperimentalWarning bench/runner.ts "$@"
