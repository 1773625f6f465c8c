#!/usr/bin/env bash
# Runs every test: the full suite on the in-memory DHT, then the flow suite
# against a real private Veilid network inside a sealed network namespace
# (no traffic leaves the machine). Works as root or unprivileged.
#
# Everything is built outside the namespace first; only built test binaries
# run inside it, where nothing can be downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== unit, integration and doc tests (MemoryDht)"
cargo test --locked

echo "== building the real-network suites and the command-line app (outside the namespace)"
mapfile -t suites < <(scripts/build-bins.sh test --no-run --features veilid-network-tests \
  --test veilid_network --test veilid_flows)
cli="$(scripts/build-bins.sh build --features veilid-network-tests --example cli | tail -n 1)"

echo "== flow tests on a private 6-node Veilid network (sealed namespace)"
for t in "${suites[@]}"; do
  echo "-- $(basename "$t")"
  scripts/netns.sh "$t" --test-threads=1
done

echo "== separate processes (network, inviter, invitee): SIGKILL at 10 points, failing nodes (sealed namespace)"
VEILID_NODES=12 scripts/netns.sh bash scripts/kill-test.sh "$cli"
