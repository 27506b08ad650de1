#!/usr/bin/env bash
# Makes sure HAProxy (Debian's package `haproxy`) is installed, for the multi-replica topology
# (scripts/topology.ts, test/integration/topology.test.ts), and prints the binary's path on stdout.
# Installs with apt-get when it is missing (needs root or sudo), as scripts/test-services.sh does
# for PostgreSQL and Redis. The package's own service is not started (policy-rc.d refuses it): the
# topology runs its own HAProxy on loopback with a config of its own.
#
#   bash scripts/haproxy-install.sh          # → /usr/sbin/haproxy
# Override: PHISERVE_HAPROXY (path to an haproxy binary; nothing is installed).
set -euo pipefail

log() { printf 'haproxy-install: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

find_haproxy() {
  if [ -n "${PHISERVE_HAPROXY:-}" ]; then echo "$PHISERVE_HAPROXY"; return; fi
  command -v haproxy 2>/dev/null && return
  [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy
  return 0
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "root or sudo needed to run: $*"; fi
}

bin=$(find_haproxy)
if [ -z "$bin" ]; then
  log "installing haproxy with apt-get"
  apt_log=$(mktemp)
  # policy-rc.d exit 101: the package's postinst must not start a system-wide haproxy service.
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    added_policy=1
  fi
  status=0
  { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy; } >"$apt_log" 2>&1 || status=$?
  [ -n "$added_policy" ] && as_root rm -f "$policy"
  if [ "$status" -ne 0 ]; then
    tail -n 30 "$apt_log" >&2
    rm -f "$apt_log"
    die "apt-get install haproxy failed"
  fi
  rm -f "$apt_log"
  bin=$(find_haproxy)
  [ -n "$bin" ] || die "haproxy installed but not found on PATH or in /usr/sbin"
fi
[ -x "$bin" ] || die "$bin is not executable"
log "$("$bin" -v | head -n 1)"
echo "$bin"
