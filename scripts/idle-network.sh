#!/usr/bin/env bash
# The cost of waiting on a real private Veilid network (issue 17): N
# invitations waiting on one node, idle for MINUTES (examples/idle_network.rs).
#
#   scripts/idle-network.sh [N] [MINUTES]      # defaults: 1000 10
#
# Builds outside the sealed namespace, then inside it runs the 6-node
# network as its own process (`cli network`) and the measurement on node 6.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t bins < <(scripts/build-bins.sh build --features veilid-net --example cli --example idle_network)
cli="" idle=""
for b in "${bins[@]}"; do
  case "$(basename "$b")" in cli) cli="$b" ;; idle_network) idle="$b" ;; esac
done
[ -n "$cli" ] && [ -n "$idle" ] || { echo "idle-network.sh: build produced ${bins[*]}" >&2; exit 1; }
VEILID_NODES=8 exec scripts/netns.sh bash -c '
  set -euo pipefail
  log="$(mktemp)"
  "$1" network >"$log" 2>&1 &
  net=$!
  trap "kill -TERM $net 2>/dev/null || true" EXIT
  for _ in $(seq 240); do grep -q "network ready" "$log" && break; sleep 0.5; done
  grep -q "network ready" "$log" || { cat "$log"; exit 1; }
  "$2" "${@:3}"
' idle-network "$cli" "$idle" "$@"
