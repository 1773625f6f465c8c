#!/usr/bin/env bash
# Builds cargo targets OUTSIDE the sealed network namespace and prints the
# paths of the executables it produced, one a line.
#
#   scripts/build-bins.sh build --features veilid-net --example demo
#   scripts/build-bins.sh test --no-run --features veilid-network-tests --test veilid_flows
#
# Every script that enters scripts/netns.sh builds with this first: nothing
# that needs the network (fetching crates) can run inside the namespace, so
# only already-built binaries are run there.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -ge 1 ] || { echo "usage: scripts/build-bins.sh (build|test|bench) ARGS..." >&2; exit 2; }
cmd="$1"; shift
# Cargo's JSON messages name each executable it linked; progress and
# diagnostics still go to stderr as usual.
out="$(cargo "$cmd" --locked --message-format=json-render-diagnostics "$@")"
bins="$(printf '%s\n' "$out" | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')"
[ -n "$bins" ] || { echo "build-bins.sh: cargo $cmd $* produced no executable" >&2; exit 1; }
printf '%s\n' "$bins"
