#!/usr/bin/env bash
# Debian packages slotflow's builders and tests use: e2fsprogs (mkfs.ext4 -d, debugfs),
# squashfs-tools (mksquashfs), buildah (Containerfile builds), skopeo and umoci (pulling and
# unpacking OCI images), docker-registry (the stack's OCI registry), chromium (the Temporal UI check),
# grub-common (grub-editenv for the grub slot driver, grub-script-check for deploy/grub/grub.cfg),
# rauc (bundles for `image build --format rauc`, and the rauc slot driver's tests, whose RAUC
# service runs on a private bus started by dbus-daemon from dbus),
# and for the VM lab (lab/): QEMU, OVMF, GRUB's EFI build, sfdisk, FAT tools, socat (QEMU's guest
# forwards), a static busybox and the Debian kernel the guests boot.
# Installed with apt-get when missing and we are root; otherwise we say what is missing.
set -euo pipefail

say() { printf 'slotflow setup: %s\n' "$*" >&2; }

declare -A PACKAGE_OF=(
  [mkfs.ext4]=e2fsprogs
  [debugfs]=e2fsprogs
  [mksquashfs]=squashfs-tools
  [buildah]=buildah
  [skopeo]=skopeo
  [umoci]=umoci
  [docker-registry]=docker-registry
  [chromium]=chromium
  [qemu-system-x86_64]=qemu-system-x86
  [sfdisk]=fdisk
  [mkfs.vfat]=dosfstools
  [mcopy]=mtools
  [grub-mkimage]=grub-common
  [grub-editenv]=grub-common
  [grub-script-check]=grub-common
  [socat]=socat
  [rauc]=rauc
  [dbus-daemon]=dbus
  [openssl]=openssl
)

# Files (not commands) the VM lab reads, and the package that installs each.
declare -A PACKAGE_OF_FILE=(
  [/usr/share/OVMF/OVMF_CODE_4M.fd]=ovmf
  [/usr/lib/grub/x86_64-efi/kernel.img]=grub-efi-amd64-bin
  [/bin/busybox]=busybox-static
)

missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done
for file in "${!PACKAGE_OF_FILE[@]}"; do
  [ -e "$file" ] || missing+=("${PACKAGE_OF_FILE[$file]}")
done
# The lab's guests boot the Debian kernel (its image in /boot, its modules in /lib/modules).
compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=(linux-image-amd64)
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
