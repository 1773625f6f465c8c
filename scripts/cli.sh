#!/usr/bin/env bash
# Runs examples/cli.rs inside the sealed network namespace, one process per
# party, as chat apps run (each with its own veilid-core node and state).
#
#   scripts/cli.sh network &                              # the private network (nodes 0-5)
#   scripts/cli.sh --state /tmp/alice identity new --name Alice
#   scripts/cli.sh --state /tmp/alice invite --pin 4711
#   scripts/cli.sh --state /tmp/bob accept invite-2-... --pin 4711   # another terminal
#
# `network` creates the namespace (scripts/netns.sh) and records its
# process id; every other command enters that same namespace (nsenter), so
# any terminal can run a party. The CLI is built first, outside the
# namespace (set CLI_BIN to a built binary to skip that).
#
# Environment: VEILID_NODES (addresses in the namespace, default 12: the
# network's 6 and 6 for parties), CLI_NETNS_PIDFILE (where the network's
# process id is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "cli.sh: $*" >&2; exit 1; }

export VEILID_NODES="${VEILID_NODES:-12}"
pidfile="${CLI_NETNS_PIDFILE:-${TMPDIR:-/tmp}/contact-invite-cli-netns.pid}"
bin="${CLI_BIN:-}"
if [ -z "$bin" ]; then
  bin="$(scripts/build-bins.sh build --features veilid-net --example cli | tail -n 1)"
fi
bin="$(realpath "$bin")"

# The network command makes the namespace; this process becomes the
# network's process (exec all the way down keeps its id), so its id names
# the namespace for the other commands.
if [ "${1:-}" = network ]; then
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    die "a network already runs (process $(cat "$pidfile")); stop it first"
  fi
  rm -f "$pidfile.ready"
  echo $$ >"$pidfile"
  export CLI_NETWORK_READY_FILE="$pidfile.ready"
  exec scripts/netns.sh "$bin" "$@"
fi

# Wait (up to 2 minutes) for a network that is starting; give up after
# 10 s if none runs at all.
for i in $(seq 240); do
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    [ -f "$pidfile.ready" ] && break
  elif [ "$i" -gt 20 ]; then
    die "no network runs: start it first with 'scripts/cli.sh network &'"
  fi
  sleep 0.5
done
[ -f "$pidfile.ready" ] || die "the network (process $pid) did not get ready in 2 minutes"
enter=(nsenter --target "$pid" --net --mount)
if [ "$(id -u)" -ne 0 ]; then
  enter=(nsenter --target "$pid" --user --preserve-credentials --net --mount)
fi
# nsenter --mount starts in the namespace's root: keep this directory.
exec "${enter[@]}" --wd="$PWD" "$bin" "$@"
