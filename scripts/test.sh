#!/usr/bin/env bash
# Runs every test: the full suite on the in-memory DHT, then the flow suite
# against a real private Veilid network inside a sealed network namespace
# (no traffic leaves the machine). Works as root or unprivileged.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== unit, integration and doc tests (MemoryDht)"
cargo test --locked

if [ -x scripts/netns.sh ] && grep -q 'veilid-network-tests' Cargo.toml; then
  echo "== flow tests on a private 6-node Veilid network (sealed namespace)"
  scripts/netns.sh cargo test --locked --features veilid-network-tests --test veilid_network --test veilid_flows -- --test-threads=1
fi
