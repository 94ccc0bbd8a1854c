#!/usr/bin/env bash
# Debian packages slotflow's builders and tests use: e2fsprogs (mkfs.ext4 -d, debugfs),
# squashfs-tools (mksquashfs), buildah (Containerfile builds), chromium (the Temporal UI check)
# and grub-common (grub-editenv for the grub slot driver, grub-script-check for deploy/grub/grub.cfg).
# Installed with apt-get when missing and we are root; otherwise we say what is missing.
set -euo pipefail

say() { printf 'slotflow setup: %s\n' "$*" >&2; }

declare -A PACKAGE_OF=(
  [mkfs.ext4]=e2fsprogs
  [debugfs]=e2fsprogs
  [mksquashfs]=squashfs-tools
  [buildah]=buildah
  [chromium]=chromium
  [grub-editenv]=grub-common
  [grub-script-check]=grub-common
)

missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "missing system packages: ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]}) — builds and tests that need them will fail"
  exit 0
fi
log="${SLOTFLOW_CACHE:-$HOME/.cache/slotflow}/apt.log"
mkdir -p "$(dirname "$log")"
say "installing system packages with apt-get: ${missing[*]} (log: $log)"
if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  say "apt-get could not install ${missing[*]}; install them by hand — builds and tests that need them will fail"
  exit 1
fi
