#!/bin/busybox sh
# The boot probe: plays the agent's part in the GRUB A/B protocol with grub-editenv, one line of
# /data/lab/plan per boot. Actions: `commit` (the booted slot is good: <slot>_OK=1, <slot>_TRY=0),
# `arm-A` / `arm-B` (one trial boot of that slot: it goes first in ORDER, OK=1, TRY=0),
# `reboot`. Each boot prints the environment GRUB left, so the host can follow the protocol.
env_file=/boot/efi/grubenv
plan=/data/lab/plan
say() { echo "slotflow-lab: $*"; }

say "grubenv $(grub-editenv "$env_file" list | grep -E '^(ORDER|[AB]_OK|[AB]_TRY)=' | sort | tr '\n' ' ')"
line=''
if [ -s "$plan" ]; then
  line="$(head -n 1 "$plan")"
  tail -n +2 "$plan" > "$plan.next" && mv "$plan.next" "$plan" && sync
fi
say "probe step: ${line:-none}"
for action in $line; do
  case "$action" in
    commit)
      grub-editenv "$env_file" set "${SLOTFLOW_LAB_SLOT}_OK=1" "${SLOTFLOW_LAB_SLOT}_TRY=0"
      say "committed slot $SLOTFLOW_LAB_SLOT"
      ;;
    arm-A | arm-B)
      target="${action#arm-}"
      other=A
      [ "$target" = A ] && other=B
      grub-editenv "$env_file" set "ORDER=$target $other" "${target}_OK=1" "${target}_TRY=0"
      say "armed a trial boot of slot $target"
      ;;
    reboot) sync; /usr/lib/slotflow-lab/reboot.sh ;;
    *) say "unknown probe action '$action'" ;;
  esac
done
sync
say "probe done"
exec sleep 2147483647
