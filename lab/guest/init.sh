#!/bin/busybox sh
# PID 1 of a lab root slot: mounts what the slot needs, says on the console which slot booted,
# configures QEMU's user-mode network, then runs the lab's service (the boot probe or the
# slotflow agent) and keeps it running, as systemd would on a real node.
export PATH=/usr/local/bin:/usr/bin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
exec < /dev/console > /dev/console 2>&1

say() { echo "slotflow-lab: $*"; }

# /dev/disk/by-partlabel/<name>, as udev would make it: slot drivers address slots by label.
mkdir -p /dev/disk/by-partlabel
for uevent in /sys/class/block/*/uevent; do
  label="$(sed -n 's/^PARTNAME=//p' "$uevent")"
  name="$(sed -n 's/^DEVNAME=//p' "$uevent")"
  [ -n "$label" ] && ln -sf "/dev/$name" "/dev/disk/by-partlabel/$label"
done

slot=''
for arg in $(cat /proc/cmdline); do
  case "$arg" in rauc.slot=*) slot="${arg#rauc.slot=}" ;; esac
done
say "booted slot ${slot:-unknown}"
say "cmdline $(cat /proc/cmdline)"
say "uptime $(cut -d' ' -f1 /proc/uptime)"

mount -t ext4 /dev/disk/by-partlabel/data /data || say "cannot mount the data partition"
mount -t vfat /dev/disk/by-partlabel/esp /boot/efi || say "cannot mount the ESP"

hostname slotflow-lab
ip link set lo up
if ip link set eth0 up 2> /dev/null; then
  ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2
fi

LAB_SERVICE=probe
set -a
[ -f /data/lab/lab.env ] && . /data/lab/lab.env
set +a
export SLOTFLOW_LAB_SLOT="$slot"
service="/usr/lib/slotflow-lab/$LAB_SERVICE.sh"
[ -x "$service" ] || { say "no service $service; idle"; service=''; }
say "starting ${LAB_SERVICE}"
delay=1
while [ -n "$service" ]; do
  "$service"
  code=$?
  say "$LAB_SERVICE exited with code $code; restarting in ${delay} s"
  sleep "$delay"
  [ "$delay" -lt 16 ] && delay=$((delay * 2))
done
while true; do sleep 3600; done
