#!/usr/bin/env bash
# The multi-process kill test (issue 17): the network, the inviter and the
# invitee are separate OS processes (examples/cli.rs), each party with its
# own veilid-core node and state directory. In each run one party is killed
# with SIGKILL at one point of its flow, restarted from its state directory,
# and the run must end with exactly one contact on each side, the same
# conversation key on both, and nothing left pending.
#
# Runs INSIDE the sealed namespace, with the CLI already built:
#   cli=$(scripts/build-bins.sh build --features veilid-net --example cli | tail -n 1)
#   VEILID_NODES=12 scripts/netns.sh bash scripts/kill-test.sh "$cli" [CASE...]
# scripts/test.sh does exactly this in its network suite.
set -euo pipefail
bin="$(realpath "${1:?usage: kill-test.sh CLI_BINARY [CASE...]}")"
shift
export CLI_NO_QR=1
work="$(mktemp -d "${TMPDIR:-/tmp}/kill-test.XXXXXX")"
export CLI_NODE_REGISTRY="$work/nodes"
t0=$(date +%s.%N)
since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
now() { printf '%6s' "$(since "$t0")"; }
say() { echo "[$(now)s] $*"; }
fail() { say "FAIL: $*"; for f in "$case_dir"/*.log; do echo "--- $f"; tail -n 40 "$f"; done; exit 1; }

# The kill points: VICTIM:PATTERN:NTH[:DOWN_SECS:WATCH_SECS]. The victim is
# killed right after the NTH line of its progress log (-v: every DHT
# operation and event) that matches PATTERN ("peer ..." patterns watch the
# other party's log instead), stays down DOWN_SECS (default 0), and both
# parties ask for watches of WATCH_SECS (default: Veilid's 10 min).
# VICTIM "relays": at the inviter's PATTERN, the network process stops two
# of its six nodes (neither is a party's own or the bootstrap node); they
# stay down until the run ends (the invitee starts only once they are down).
all_cases=(
  "inviter:dht create:1"              # publishing: the records exist, the request is not written
  "inviter:invitation published:1"    # published, waiting for the invitee
  "inviter:peer accept signed:1"      # the response is in the inbox, not yet read by the inviter
  "inviter:dht set:2"                 # the final status is written, the contact not yet saved
  "inviter:is now a contact:1"        # the contact is saved, the tombstone not yet written
  "invitee:reading the invitation:1"  # the flow is started, the inbox not yet read
  "invitee:invitation from:1"         # verified, the accept not yet written
  "invitee:dht set:1"                 # the response is written, its event not yet shown
  "invitee:accept signed:1"           # waiting for the final status
  "invitee:is now a contact:1"        # the contact is final, the flow not yet closed
  "relays:invitation published:1"     # failing nodes: 2 of the 6 network nodes stop between publish and accept
  "inviter:invitation published:1:75:60"  # the inviter's node (its process) is down 75 s, longer than a 60 s watch
)
cases=("$@")
[ "${#cases[@]}" -gt 0 ] || cases=("${all_cases[@]}")

say "starting the network (6 nodes) as its own process"
"$bin" network >"$work/network.log" 2>&1 &
net_pid=$!
trap 'kill -TERM $net_pid 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true' EXIT
for _ in $(seq 240); do grep -q "network ready" "$work/network.log" && break; sleep 0.5; done
grep -q "network ready" "$work/network.log" || { cat "$work/network.log"; echo "the network did not start" >&2; exit 1; }

# has LOG PATTERN N: whether LOG has at least N lines matching PATTERN.
has() { [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$3" ]; }
# wait_for SECS CMD...: polls CMD every 50 ms.
wait_for() { local end=$(( $(date +%s) + $1 )); shift; until "$@"; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.05; done; }
ticket_in() { cat "$@" 2>/dev/null | grep -o 'invite-2-[a-z0-9-]*' | head -n 1 || true; }
# A child that exited stays a zombie until waited for: not running.
running() { local st; st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1; [ -n "$st" ] && [ "$st" != Z ]; }

n=0
summary=()
kills_inviter=0; kills_invitee=0
for spec in "${cases[@]}"; do
  n=$((n + 1))
  IFS=: read -r victim pattern nth down watch <<<"$spec"
  down="${down:-0}"
  wargs=(); [ -z "${watch:-}" ] || wargs=(--watch-secs "$watch")
  case_dir="$work/case$n"; mkdir -p "$case_dir"
  a="$case_dir/alice"; b="$case_dir/bob"
  note=""; [ "$down" = 0 ] || note=", down $down s"
  say "case $n: kill the $victim after '$pattern' #$nth${watch:+, watches of $watch s}$note"
  case_t0=$(date +%s.%N)
  "$bin" --state "$a" identity new --name Alice >"$case_dir/alice-id.log" 2>&1 || fail "identity"
  "$bin" --state "$b" identity new --name Bob >"$case_dir/bob-id.log" 2>&1 || fail "identity"

  "$bin" --state "$a" -v "${wargs[@]}" --timeout 240 invite --message "case $n" >"$case_dir/alice-1.log" 2>&1 &
  a_pid=$!; a_run=1
  b_pid=""; b_run=0
  killed=""
  kill_t=""

  # Where the victim's log is, and whose log the pattern is looked for in.
  target_log() {
    local who="$victim" p="$pattern"
    [ "$who" != relays ] || who=inviter
    if [[ "$p" == peer\ * ]]; then
      p="${p#peer }"
      [ "$who" = inviter ] && who=invitee || who=inviter
    fi
    local log
    if [ "$who" = inviter ]; then log="$case_dir/alice-$a_run.log"; else log="$case_dir/bob-$b_run.log"; fi
    echo "$log|$p"
  }
  try_kill() {
    [ -z "$killed" ] || return 0
    IFS='|' read -r log p <<<"$(target_log)"
    [ -f "$log" ] && has "$log" "$p" "$nth" || return 0
    if [ "$victim" = relays ]; then
      kill -USR1 "$net_pid"
      wait_for 60 grep -q "stopped nodes" "$work/network.log" || fail "the network did not stop two nodes"
      killed=relays; kill_t=$(date +%s.%N)
      say "  stopped 2 of the network's 6 nodes: $(grep -o 'stopped nodes.*' "$work/network.log" | tail -n 1)"
      return 0
    fi
    local pid; if [ "$victim" = inviter ]; then pid=$a_pid; else pid=$b_pid; fi
    [ -n "$pid" ] || return 0
    if running "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      killed=yes; kill_t=$(date +%s.%N)
      say "  SIGKILL to the $victim (pid $pid)"
    else
      killed=late
      say "  the $victim had already exited when its point came"
    fi
  }

  # Run until both parties exited on their own, restarting the victim once.
  end=$(( $(date +%s) + 300 ))
  a_done=""; b_done=""
  while [ -z "$a_done" ] || [ -z "$b_done" ]; do
    [ "$(date +%s)" -lt "$end" ] || fail "case $n did not finish in 300 s"
    try_kill
    if [ "$killed" = yes ] && awk -v s="$(since "$kill_t")" -v d="$down" 'BEGIN { exit !(s >= d) }'; then
      killed=restarted; restart_t=$(date +%s.%N)
      if [ "$victim" = inviter ]; then
        a_run=$((a_run + 1))
        "$bin" --state "$a" -v "${wargs[@]}" --timeout 240 pending --wait >"$case_dir/alice-$a_run.log" 2>&1 &
        a_pid=$!
      else
        b_run=$((b_run + 1))
        "$bin" --state "$b" -v "${wargs[@]}" --timeout 240 accept "$ticket" >"$case_dir/bob-$b_run.log" 2>&1 &
        b_pid=$!
      fi
      say "  restarted the $victim from its state directory"
    fi
    # The invitee starts once a ticket was printed (and, with failing
    # relays, once they are down).
    if [ -z "$b_pid" ] && { [ "$victim" != relays ] || [ "$killed" = relays ]; }; then
      ticket="$(ticket_in "$case_dir"/alice-*.log)"
      if [ -n "$ticket" ]; then
        b_run=1
        "$bin" --state "$b" -v "${wargs[@]}" --timeout 240 accept "$ticket" >"$case_dir/bob-1.log" 2>&1 &
        b_pid=$!
      fi
    fi
    # (While the victim stays down, its old process id is not checked.)
    if [ "$killed" != yes ] && [ -z "$a_done" ] && ! running "$a_pid"; then
      wait "$a_pid" || fail "the inviter exited with an error"
      if [ -z "$b_pid" ]; then
        # Killed before the invitation was persisted: `pending --wait`
        # found nothing to resume, so the user invites again.
        a_run=$((a_run + 1))
        "$bin" --state "$a" -v "${wargs[@]}" --timeout 240 invite --message "case $n" >"$case_dir/alice-$a_run.log" 2>&1 &
        a_pid=$!
      else
        a_done=1
      fi
    fi
    if [ "$killed" != yes ] && [ -n "$b_pid" ] && [ -z "$b_done" ] && ! running "$b_pid"; then
      wait "$b_pid" || fail "the invitee exited with an error"
      b_done=1
    fi
    sleep 0.05
  done
  [ -n "$killed" ] || fail "the kill point '$pattern' #$nth never came"
  total="$(since "$case_t0")"
  took="$(since "${restart_t:-${kill_t:-$case_t0}}")"
  restart_t=""

  # Exactly one contact each, the same conversation key, the peers crossed.
  "$bin" --state "$a" contacts >"$case_dir/alice-contacts.log" 2>&1 || fail "contacts"
  "$bin" --state "$b" contacts >"$case_dir/bob-contacts.log" 2>&1 || fail "contacts"
  grep -q "^1 contact(s)" "$case_dir/alice-contacts.log" || fail "the inviter does not have exactly one contact"
  grep -q "^1 contact(s)" "$case_dir/bob-contacts.log" || fail "the invitee does not have exactly one contact"
  fa="$(grep -o 'conversation-key-fingerprint [0-9a-f]*' "$case_dir/alice-contacts.log")"
  fb="$(grep -o 'conversation-key-fingerprint [0-9a-f]*' "$case_dir/bob-contacts.log")"
  [ -n "$fa" ] && [ "$fa" = "$fb" ] || fail "the conversation keys differ ($fa / $fb)"
  grep -q " Bob " "$case_dir/alice-contacts.log" && grep -q " Alice " "$case_dir/bob-contacts.log" || fail "wrong peers"
  # Nothing left pending on either side.
  for s in "$a" "$b"; do
    "$bin" --state "$s" pending >"$case_dir/pending.log" 2>&1 || fail "pending"
    grep -q "nothing in progress" "$case_dir/pending.log" || fail "a flow is left pending in $s"
  done
  case "$killed" in
    restarted) if [ "$victim" = inviter ]; then kills_inviter=$((kills_inviter + 1)); else kills_invitee=$((kills_invitee + 1)); fi
      what="restarted after ${down} s down; restart -> both contacts final in $took s" ;;
    relays) what="2 nodes stopped; stop -> both contacts final in $took s" ;;
    *) what="exited before its kill point" ;;
  esac
  summary+=("case $n  $victim at '$pattern' #$nth: $what; whole run $total s; same key ${fa#conversation-key-fingerprint }")
  say "  ok: one contact each, same conversation key, nothing pending"
  # The state directories go (their node addresses are free again); the logs stay.
  rm -rf "$a" "$b"
  if [ "$victim" = relays ]; then
    kill -USR2 "$net_pid"
    wait_for 120 grep -q "restarted nodes" "$work/network.log" || fail "the stopped nodes did not come back"
  fi
done

echo
echo "kill test: ${#summary[@]} runs passed; SIGKILL landed mid-flow $kills_inviter times on the inviter, $kills_invitee on the invitee"
printf '  %s\n' "${summary[@]}"
if [ "$#" -eq 0 ] && { [ "$kills_inviter" -lt 5 ] || [ "$kills_invitee" -lt 5 ]; }; then
  echo "FAIL: each party must be killed mid-flow at 5 points at least" >&2
  exit 1
fi
kill -TERM "$net_pid" 2>/dev/null || true
wait "$net_pid" 2>/dev/null || true
trap - EXIT
rm -rf "$work"
