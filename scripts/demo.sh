#!/usr/bin/env bash
# Runs the demo: a private 6-node Veilid network inside a sealed network
# namespace on this machine (no traffic leaves it), and three invitations.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/netns.sh cargo run --locked --example demo
