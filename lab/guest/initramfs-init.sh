#!/bin/busybox sh
# The lab initramfs: loads the drivers the root slot needs, finds the partition named by the
# kernel's root=PARTLABEL=… argument (no udev here: the kernel's uevent files carry PARTNAME),
# mounts it read-only and hands over to the slot's /sbin/init.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "slotflow-initramfs: $*" > /dev/console; }
rescue() {
  say "$*; dropping to a shell"
  exec sh < /dev/console > /dev/console 2>&1
}

while read -r module; do
  [ -n "$module" ] && insmod "/lib/modules/$module" 2> /dev/null
done < /lib/modules/load-order

root=''
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=PARTLABEL=*) root="${arg#root=PARTLABEL=}" ;;
    root=/dev/*) root="${arg#root=}" ;;
  esac
done
[ -n "$root" ] || rescue "no root=PARTLABEL=… or root=/dev/… on the kernel command line"

# The name of the block device whose GPT partition name is $1, once the kernel has found it.
by_partlabel() {
  for uevent in /sys/class/block/*/uevent; do
    if grep -qx "PARTNAME=$1" "$uevent"; then
      sed -n 's/^DEVNAME=//p' "$uevent"
      return 0
    fi
  done
  return 1
}

device=''
tries=0
while [ -z "$device" ] && [ "$tries" -lt 100 ]; do
  case "$root" in
    /dev/*) [ -b "$root" ] && device="$root" ;;
    *) name="$(by_partlabel "$root")" && device="/dev/$name" ;;
  esac
  [ -n "$device" ] || { sleep 0.1; tries=$((tries + 1)); }
done
[ -n "$device" ] || rescue "root partition '$root' did not appear within 10 s"

# Slot images are squashfs (compressed: less to fetch and write) or ext4.
mount -t squashfs -o ro "$device" /newroot 2> /dev/null ||
  mount -t ext4 -o ro "$device" /newroot ||
  rescue "cannot mount $device (root '$root') as squashfs or ext4"
[ -x /newroot/sbin/init ] || rescue "$device has no /sbin/init"
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
