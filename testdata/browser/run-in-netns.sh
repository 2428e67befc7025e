#!/usr/bin/env bash
# run-in-netns.sh <cmd> [args...]
#
# Runs <cmd> inside a private network namespace (plus a private PID namespace)
# made for this run only, so that WebRTC tests have routable host candidates
# and can never send traffic off this machine:
#
#   lo                      127.0.0.1 (up)
#   v0 <-veth-> v1          10.201.0.1/24  <->  10.201.0.2/24
#   default route           via 10.201.0.2 (inside the namespace; nothing is
#                           forwarded, so off-subnet packets are dropped there)
#
# Why: Chromium gathers no ICE candidates on loopback, and it picks its host
# candidate address from the interface of the default route. With the veth pair
# and the default route both inside the namespace, pages get host candidates
# 10.201.0.x and every packet stays in the namespace.
#
# The PID namespace is a safety net: when <cmd> ends (or unshare is killed),
# the kernel kills every process still left inside (caddy, chromium, node
# peers), even if the harness could not clean up.
#
# Already inside (CADDYP2P_NETNS=1 and v0 has 10.201.0.1): runs <cmd> as is.
# Needs root, or unprivileged user namespaces (then `unshare -r` is used).
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 <cmd> [args...]" >&2
  exit 2
fi

in_netns() {
  [ "${CADDYP2P_NETNS:-}" = 1 ] && ip -4 -o addr show dev v0 2>/dev/null | grep -q ' 10\.201\.0\.1/'
}

if in_netns; then
  exec "$@"
fi

if ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then
  echo "run-in-netns.sh: needs unshare (util-linux) and ip (iproute2)" >&2
  exit 2
fi

userns=()
if [ "$(id -u)" != 0 ]; then
  userns=(--map-root-user)
fi

# shellcheck disable=SC2016 # the inner script is expanded by the inner shell
exec unshare "${userns[@]}" --net --pid --fork --kill-child --mount-proc -- bash -c '
  set -e
  ip link set lo up
  ip link add v0 type veth peer name v1
  ip addr add 10.201.0.1/24 dev v0
  ip addr add 10.201.0.2/24 dev v1
  ip link set v0 up
  ip link set v1 up
  ip route add default via 10.201.0.2
  export CADDYP2P_NETNS=1
  # Not exec: keep bash as PID 1 of the namespace so that <cmd> gets normal
  # signal semantics (PID 1 ignores signals it has no handler for).
  set +e
  "$@"
  rc=$?
  exit "$rc"
' run-in-netns "$@"
