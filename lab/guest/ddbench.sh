#!/bin/busybox sh
# The upgrade benchmark's baseline (bench/vm-upgrade.ts): the work an upgrade cannot avoid on this
# machine, done without slotflow. Streams the image from LAB_BENCH_URL straight into the passive
# slot with wget and dd, flushes it, then reboots with the lab's reboot command; the next boot
# only idles. The console lines carry the figures.
say() { echo "slotflow-lab: $*"; }
done_marker=/data/lab/ddbench.done
if [ -f "$done_marker" ]; then
  say "bench baseline done"
  exec sleep 2147483647
fi
case "$SLOTFLOW_LAB_SLOT" in
  A) passive=root-b ;;
  *) passive=root-a ;;
esac
start="$(cut -d' ' -f1 /proc/uptime)"
if ! wget -q -O - "$LAB_BENCH_URL" | dd of="/dev/disk/by-partlabel/$passive" bs=1M conv=fsync 2> /tmp/dd.err; then
  say "bench dd failed: $(cat /tmp/dd.err)"
  exec sleep 2147483647
fi
end="$(cut -d' ' -f1 /proc/uptime)"
say "bench dd seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') $(tail -n 1 /tmp/dd.err)"
touch "$done_marker"
sync
exec /usr/lib/slotflow-lab/reboot.sh
