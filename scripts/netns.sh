#!/usr/bin/env bash
# Run a command inside a sealed network + mount namespace that holds fake
# *global* addresses, so a private Veilid network of N nodes can attach
# without any traffic leaving the machine.
#
#   scripts/netns.sh BINARY [ARGS...]
#   VEILID_NODES=8 scripts/netns-cargo.sh test --features veilid-network-tests --test veilid_network
#
# Only already-built programs run inside: the namespace has no network, so
# cargo (which may need to fetch crates) is refused here; build outside with
# scripts/build-bins.sh or let scripts/netns-cargo.sh do both.
#
# Why: Veilid's DHT only runs in the PublicInternet routing domain, which
# only accepts is_global() addresses; 127.0.0.1 never attaches (see
# docs/local-network.md). Inside the namespace:
#   - lo up; a veth pair vp0/vp1 (both ends stay inside: no link to any
#     real interface, nothing can leave the machine);
#   - on vp0, node I (1-based) gets 11.0.0.I/32 (one /32 each: extra
#     same-subnet addresses would be "secondary" and skipped by Veilid) and
#     2600::I/64 with nodad (dual stack: relay requirements cover both
#     address families);
#   - dead-end default routes (a global IPv4 address needs a gateway for
#     Veilid to offer PublicInternet support);
#   - a namespace-private /etc/hosts: nodeI -> both addresses of node I,
#     with I counted from 0 (node0 = 11.0.0.1 / 2600::1).
# Works as root (unshare --net --mount) and unprivileged
# (unshare --user --map-root-user --net --mount).
set -euo pipefail

die() {
    echo "netns.sh: error: $*" >&2
    exit 1
}

if [ "${1:-}" = "--inside" ]; then
    # Second stage: we are inside the new namespaces.
    shift
    nodes="${VEILID_NODES:-6}"

    ip link set lo up
    ip link add vp0 type veth peer name vp1
    ip link set vp0 up
    ip link set vp1 up
    # IPv6 may be disabled by default in a new namespace on some systems.
    if [ -w /proc/sys/net/ipv6/conf/all/disable_ipv6 ]; then
        echo 0 >/proc/sys/net/ipv6/conf/all/disable_ipv6 || true
        echo 0 >/proc/sys/net/ipv6/conf/vp0/disable_ipv6 || true
    fi

    hosts_dir="$(mktemp -d "${TMPDIR:-/tmp}/veilid-netns.XXXXXX")"
    hosts="$hosts_dir/hosts"
    {
        echo "127.0.0.1 localhost"
        echo "::1 localhost ip6-localhost ip6-loopback"
    } >"$hosts"

    i=1
    while [ "$i" -le "$nodes" ]; do
        hex="$(printf '%x' "$i")"
        ip addr add "11.0.0.$i/32" dev vp0
        ip -6 addr add "2600::$hex/64" dev vp0 nodad
        echo "11.0.0.$i node$((i - 1))" >>"$hosts"
        echo "2600::$hex node$((i - 1))" >>"$hosts"
        i=$((i + 1))
    done

    ip route add default via 11.0.0.254 dev vp0 onlink
    ip -6 route add default via 2600::ffff dev vp0

    # The mount namespace is private (unshare's default propagation), so
    # this bind mount is invisible outside.
    mount --bind "$hosts" /etc/hosts

    if [ "${VEILID_NETNS_VERBOSE:-0}" != "0" ]; then
        ip -br addr >&2
        ip route >&2
        ip -6 route >&2
    fi

    exec "$@"
fi

[ "$#" -ge 1 ] || die "usage: scripts/netns.sh CMD [ARGS...]  (env VEILID_NODES, default 6)"
case "$(basename "$1")" in
cargo | rustup | cargo-*)
    die "'$1' must not run inside the namespace (it has no network to fetch crates): build outside and run the binary, e.g. scripts/netns-cargo.sh ${2:-build} ..." ;;
esac

command -v unshare >/dev/null 2>&1 ||
    die "'unshare' not found: install util-linux (apt-get install util-linux)"
command -v ip >/dev/null 2>&1 ||
    die "'ip' not found: install iproute2 (apt-get install iproute2)"
command -v mount >/dev/null 2>&1 ||
    die "'mount' not found: install mount (apt-get install mount)"

nodes="${VEILID_NODES:-6}"
case "$nodes" in
'' | *[!0-9]*) die "VEILID_NODES must be a number, got '$nodes'" ;;
esac
if [ "$nodes" -lt 1 ] || [ "$nodes" -gt 250 ]; then
    die "VEILID_NODES must be between 1 and 250, got $nodes"
fi
export VEILID_NODES="$nodes"

self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

if [ "$(id -u)" -eq 0 ]; then
    unshare_args=(--net --mount)
else
    unshare_args=(--user --map-root-user --net --mount)
fi

# Probe first so a refusal (no privileges, user namespaces disabled) gives a
# clear message instead of a half-configured namespace.
if ! unshare "${unshare_args[@]}" true 2>/dev/null; then
    die "'unshare ${unshare_args[*]}' was refused: run as root, or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0)"
fi

exec unshare "${unshare_args[@]}" bash "$self" --inside "$@"
