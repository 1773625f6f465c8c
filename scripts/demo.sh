#!/usr/bin/env bash
# Runs the demo: a private 6-node Veilid network inside a sealed network
# namespace on this machine (no traffic leaves it), and three invitations.
#
# The demo is built first, outside the namespace (the build fetches crates);
# only the built binary runs inside it, where there is no network.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== building the demo (the first build compiles veilid-core: ~5-8 min on 2 cores)" >&2
demo="$(scripts/build-bins.sh build --features veilid-net --example demo | tail -n 1)"
echo "== running $demo inside a sealed network namespace" >&2
exec scripts/netns.sh "$demo" "$@"
