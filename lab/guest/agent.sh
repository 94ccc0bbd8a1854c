#!/bin/busybox sh
# Runs this slot's slotflow agent, as the systemd unit does on a real node. Settings come from
# /data/lab/lab.env (written per VM by the lab): SLOTFLOW_NODE_ID, NATS_URL (QEMU forwards the
# guest address 10.0.2.100 to the host's nats-server), LAB_SLOT_DRIVER (default grub: the real
# A/B slots and GRUB environment block of the lab disk), LAB_LABELS (extra k=v,… labels) and
# LAB_AGENT_ARGS.
[ -x /usr/local/bin/node ] || { echo "slotflow-lab: this slot carries no agent"; exit 2; }
export HOME=/data/home
export SLOTFLOW_HOME=/data/slotflow
export NODE_COMPILE_CACHE=/data/cache/node-compile
export NATS_URL="${NATS_URL:-nats://10.0.2.100:4222}"
mkdir -p "$HOME" "$SLOTFLOW_HOME" /data/agent /data/lab/keys
echo "slotflow-lab: starting slotflow agent ${SLOTFLOW_NODE_ID:-lab-node} (slot driver ${LAB_SLOT_DRIVER:-grub}, NATS $NATS_URL)"
# The agent's Node flags, as bin/slotflow gives them (a small young generation keeps RSS low).
# shellcheck disable=SC2086 # LAB_AGENT_ARGS is a list of extra flags
exec /usr/local/bin/node --max-semi-space-size=1 /opt/slotflow/dist/main.js agent \
  --node-id "${SLOTFLOW_NODE_ID:-lab-node}" \
  --data-dir /data/agent \
  --labels "site=lab,slot=${SLOTFLOW_LAB_SLOT:-unknown}${LAB_LABELS:+,$LAB_LABELS}" \
  --slot-driver "${LAB_SLOT_DRIVER:-grub}" \
  --reboot command \
  --reboot-command /usr/lib/slotflow-lab/reboot.sh \
  --trusted-keys /data/lab/keys \
  --initial-version "$(sed -n 's/^VERSION_ID="\(.*\)"$/\1/p' /etc/os-release)" \
  $LAB_AGENT_ARGS
