#!/usr/bin/env bash
# Builds a cargo target OUTSIDE the sealed network namespace, then runs the
# built executable(s) INSIDE it (scripts/netns.sh). Use this instead of
# running cargo under scripts/netns.sh: inside the namespace nothing can be
# downloaded, so cargo must never run there.
#
#   scripts/netns-cargo.sh build --features veilid-net --example veilid_smoke
#   scripts/netns-cargo.sh build --profile netbench --features veilid-net --example network_bench -- 20 0
#   scripts/netns-cargo.sh test --features veilid-network-tests --test veilid_flows -- --nocapture
#   scripts/netns-cargo.sh bench --profile netbench --features veilid-net --bench scale
#
# Arguments after `--` go to the executable. Environment (VEILID_NODES, ...)
# passes through.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -ge 2 ] || { echo "usage: scripts/netns-cargo.sh (build|test|bench) CARGO_ARGS... [-- ARGS...]" >&2; exit 2; }
cmd="$1"; shift
cargo_args=(); run_args=()
while [ "$#" -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; run_args=("$@"); break; fi
  cargo_args+=("$1"); shift
done
case "$cmd" in
  build) ;;
  test) cargo_args=(--no-run "${cargo_args[@]}") ;;
  # cargo passes --bench to harness=false bench binaries; so do we.
  bench) cargo_args=(--no-run "${cargo_args[@]}"); run_args=(--bench "${run_args[@]}") ;;
  *) echo "netns-cargo.sh: '$cmd' is not build, test or bench" >&2; exit 2 ;;
esac
mapfile -t bins < <(scripts/build-bins.sh "$cmd" "${cargo_args[@]}")
for bin in "${bins[@]}"; do
  echo "== $(basename "$bin") inside the sealed namespace" >&2
  scripts/netns.sh "$bin" "${run_args[@]}"
done
