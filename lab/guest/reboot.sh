#!/bin/busybox sh
# The lab's reboot command (the agent's --reboot-command): flush every file system, then reset
# the machine at once, as a power button would.
echo "slotflow-lab: rebooting"
sync
reboot -f
