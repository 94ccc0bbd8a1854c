#!/bin/sh
# Registers slotflow's custom search attributes so the Temporal UI can filter rollouts and node
# upgrades by them. Run once by the compose service temporal-search-attributes (admin-tools image).
# Idempotent: the server leaves an attribute that already exists with the same type alone.
set -eu

address="${TEMPORAL_ADDRESS:-temporal:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"
attempts="${REGISTER_ATTEMPTS:-60}"

# auto-setup creates the namespace just before the server reports healthy, and the frontend's
# namespace cache can lag by a few seconds, so the first tries may fail with "namespace not found".
i=1
until temporal operator search-attribute create --address "$address" --namespace "$namespace" \
  --name RolloutId --type Keyword \
  --name NodeId --type Keyword \
  --name ImageDigest --type Keyword \
  --name Wave --type Int; do
  if [ "$i" -ge "$attempts" ]; then
    echo "slotflow: could not register search attributes in namespace '$namespace' at $address after $attempts tries" >&2
    exit 1
  fi
  i=$((i + 1))
  sleep 2
done

listing="$(temporal operator search-attribute list --address "$address" --namespace "$namespace")"
for name in RolloutId NodeId ImageDigest Wave; do
  if ! printf '%s\n' "$listing" | grep -qw "$name"; then
    echo "slotflow: search attribute $name is missing from namespace '$namespace' after registration" >&2
    exit 1
  fi
done
echo "slotflow: search attributes RolloutId, NodeId, ImageDigest (Keyword) and Wave (Int) are registered in '$namespace'"
