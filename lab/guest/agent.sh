#!/bin/busybox sh
# Runs this slot's slotflow agent with the settings in /data/lab/lab.env.
echo "slotflow-lab: this slot carries no agent"
exit 2
