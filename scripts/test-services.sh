#!/usr/bin/env bash
# Starts throwaway PostgreSQL (15 preferred) and Redis servers on 127.0.0.1 for the test suites
# and prints, on stdout, the lines to eval:
#
#   eval "$(bash scripts/test-services.sh)"
#     export PHISERVE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/postgres
#     export PHISERVE_TEST_REDIS_URL=redis://127.0.0.1:PORT
#   bash scripts/test-services.sh stop     # stops both and deletes their data
#
# Installs the Debian packages (postgresql, redis-server) with apt-get when the binaries are
# missing (needs root or sudo). Both servers listen on loopback only, on free ports, with data in
# $PHISERVE_TEST_SERVICES_DIR (default: $TMPDIR/phiserve-test-services-<uid>); PostgreSQL trusts
# every loopback connection and skips fsync, Redis persists nothing: for tests only. Running it
# again while they are up prints the same lines. Progress and errors go to stderr.
# Overrides: PHISERVE_TEST_PG_BIN (folder with initdb and pg_ctl).
set -euo pipefail

STATE_DIR="${PHISERVE_TEST_SERVICES_DIR:-${TMPDIR:-/tmp}/phiserve-test-services-$(id -u)}"
PG_DATA="$STATE_DIR/postgres"
PG_SUPERUSER=postgres

log() { printf 'test-services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

as_root() {
  if is_root; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "root or sudo needed to run: $*"; fi
}

# The PostgreSQL binaries folder: an override, else version 15, else the newest installed.
find_pg_bin() {
  if [ -n "${PHISERVE_TEST_PG_BIN:-}" ]; then echo "$PHISERVE_TEST_PG_BIN"; return; fi
  if [ -x /usr/lib/postgresql/15/bin/initdb ]; then echo /usr/lib/postgresql/15/bin; return; fi
  local newest
  newest=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ -d "$newest" ]; then echo "$newest"; else echo /usr/lib/postgresql/15/bin; fi
}

install_missing() {
  local packages=()
  [ -x "$(find_pg_bin)/initdb" ] || packages+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
  [ "${#packages[@]}" -eq 0 ] && return 0
  log "installing ${packages[*]} with apt-get"
  local apt_log
  apt_log=$(mktemp)
  if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"; } >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    rm -f "$apt_log"
    die "apt-get install ${packages[*]} failed"
  fi
  rm -f "$apt_log"
}

# PostgreSQL refuses to run as root: as root, its commands run as the `postgres` system user.
run_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A port nothing listens on: the kernel's choice via node or python3, else a random one that refuses connections.
free_port() {
  if command -v node >/dev/null 2>&1; then
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close()})'
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'
  else
    local port
    for _ in $(seq 1 100); do
      port=$((20000 + RANDOM % 30000))
      if ! { exec 4<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then echo "$port"; return; fi
      exec 4>&-
    done
    die "found no free port"
  fi
}

prepare_state_dir() {
  [ -L "$STATE_DIR" ] && die "$STATE_DIR is a symlink; refusing to use it"
  mkdir -p "$STATE_DIR"
  chmod 755 "$STATE_DIR" # the postgres user must reach its data folder inside
  if is_root && ! id -u "$PG_SUPERUSER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_SUPERUSER"
  fi
}

start_postgres() {
  local pg_bin port
  pg_bin=$(find_pg_bin)
  if [ -f "$STATE_DIR/postgres.port" ] && run_pg "$pg_bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    cat "$STATE_DIR/postgres.port"
    return
  fi
  rm -rf "$PG_DATA"
  mkdir -m 700 "$PG_DATA"
  if is_root; then chown "$PG_SUPERUSER:" "$PG_DATA"; fi
  run_pg "$pg_bin/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --auth=trust --encoding=UTF8 --no-locale --no-sync >/dev/null \
    || die "initdb failed"
  port=$(free_port)
  local options="-c listen_addresses=127.0.0.1 -p $port -k $PG_DATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if ! run_pg "$pg_bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 -o "$options" start >/dev/null; then
    tail -n 20 "$PG_DATA/server.log" >&2 || true
    die "PostgreSQL did not start"
  fi
  echo "$port" >"$STATE_DIR/postgres.port"
  log "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data: $PG_DATA)"
  echo "$port"
}

redis_ping() {
  local reply=""
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3>&-
  [ "${reply%$'\r'}" = "+PONG" ]
}

start_redis() {
  local port
  if [ -f "$STATE_DIR/redis.port" ] && redis_ping "$(cat "$STATE_DIR/redis.port")"; then
    cat "$STATE_DIR/redis.port"
    return
  fi
  port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
    --dir "$STATE_DIR" --pidfile "$STATE_DIR/redis.pid" --logfile "$STATE_DIR/redis.log" >&2
  for _ in $(seq 1 50); do
    if redis_ping "$port"; then
      echo "$port" >"$STATE_DIR/redis.port"
      log "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$port"
      echo "$port"
      return
    fi
    sleep 0.1
  done
  tail -n 20 "$STATE_DIR/redis.log" >&2 || true
  die "Redis did not start"
}

stop_all() {
  if [ -d "$PG_DATA" ]; then
    run_pg "$(find_pg_bin)/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
  fi
  if [ -f "$STATE_DIR/redis.pid" ]; then
    kill "$(cat "$STATE_DIR/redis.pid")" 2>/dev/null || true
  fi
  rm -rf "$STATE_DIR"
  log "stopped; removed $STATE_DIR"
}

main() {
  case "${1:-start}" in
    start) ;;
    stop) stop_all; return ;;
    *) die "usage: $0 [start|stop]" ;;
  esac
  install_missing
  prepare_state_dir
  local pg_port redis_port
  pg_port=$(start_postgres)
  redis_port=$(start_redis)
  echo "export PHISERVE_TEST_POSTGRES_URL=postgres://$PG_SUPERUSER@127.0.0.1:$pg_port/postgres"
  echo "export PHISERVE_TEST_REDIS_URL=redis://127.0.0.1:$redis_port"
}

main "$@"
