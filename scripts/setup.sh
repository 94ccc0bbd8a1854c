#!/usr/bin/env bash
# One-time (and idempotent) set-up: Node >= 22.18, npm dependencies, and the Temporal CLI and
# nats-server binaries the embedded stack runs. Each step says what it does; a finished step is
# skipped on the next run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=node-env.sh
source "$ROOT/scripts/node-env.sh"
cd "$ROOT"

stamp="node_modules/.slotflow-lock-$(sha256sum package-lock.json | cut -c1-16)-$(node -p process.versions.modules)"
if [ ! -f "$stamp" ]; then
  slotflow_log "installing npm dependencies (versions from package-lock.json) with Node $(node --version)"
  # Not `npm ci`: the lock lists optional per-platform builds the registry may not serve for
  # every platform, and npm ci refuses such a lock; npm install still installs the locked versions.
  npm install --no-save --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
fi

bash "$ROOT/scripts/system-packages.sh"
node --disable-warning=ExperimentalWarning cli/main.ts provision
