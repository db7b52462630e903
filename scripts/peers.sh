#!/usr/bin/env bash
# The peers that `boxoffice-bench --mode compare` measures boxoffice against, started from
# Debian's packages on loopback, on non-default ports, with fresh data in a state directory.
#
#   scripts/peers.sh start|stop|status|url [etcd1|etcd3|postgres|redis|redis-aof|all]
#
# start   starts the peer (installing its package with apt-get when root and it is missing;
#         without root and without the package it says so and exits 1). Prints "started"
#         or "already running".
# stop    stops ONLY what this script started (pid files in the state directory, each with the
#         process's start time, so a reused pid is never signalled), then removes that
#         peer's data.
# status  says which peers this script has running.
# url     prints the address(es) the bench connects to, comma-separated.
#
# State directory: $BOXOFFICE_PEERS_DIR, or ${TMPDIR:-/tmp}/boxoffice-peers. Every wait is
# bounded (READY_TRIES x 0.5 s). Everything binds 127.0.0.1 only.
#
# | peer      | package       | ports (client / peer)        | durability                        |
# |-----------|---------------|------------------------------|-----------------------------------|
# | etcd1     | etcd-server   | 23790 / 23800                | WAL fsync per commit (default)    |
# | etcd3     | etcd-server   | 23791-23793 / 23801-23803    | same, 3 members                   |
# | postgres  | postgresql    | 25432                        | synchronous_commit=on, fsync=on   |
# | redis     | redis-server  | 26379                        | none (no RDB, no AOF)             |
# | redis-aof | redis-server  | 26380                        | appendonly yes, appendfsync always|
set -euo pipefail

STATE="${BOXOFFICE_PEERS_DIR:-${TMPDIR:-/tmp}/boxoffice-peers}"
READY_TRIES=120
PEERS="etcd3 etcd1 postgres redis redis-aof"

say() { echo "peers.sh: $*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }

# ---- packages --------------------------------------------------------------------------

pg_bin() {
  # Debian's server binaries (not whatever is first on PATH): the newest installed major.
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$d" ] && [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && echo "$d"
}

have() {
  case "$1" in
    etcd-server) command -v etcd >/dev/null 2>&1 ;;
    redis-server) command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ;;
    postgresql) [ -n "$(pg_bin)" ] ;;
  esac
}

# ensure PACKAGE: present, or installed now (root), or a message and status 1.
ensure() {
  have "$1" && return 0
  if is_root && command -v apt-get >/dev/null 2>&1; then
    say "installing $1"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "$1" >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt-get install -y -qq "$1" >/dev/null 2>&1 || true
    fi
    have "$1" && return 0
    echo "skip: apt-get install $1 failed"
    return 1
  fi
  echo "skip: package $1 is not installed and this is not root (apt-get install -y $1)"
  return 1
}

# ---- pids ------------------------------------------------------------------------------

# starttime PID: when the process started (clock ticks since boot), so that a pid file
# never names a process that merely reused the pid.
starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

record_pid() { echo "$2 $(starttime "$2")" >"$1"; } # record_pid PIDFILE PID

# alive PIDFILE: the process it records runs (same pid, same start time, not a zombie).
alive() {
  local pid start
  [ -f "$1" ] || return 1
  read -r pid start <"$1" || return 1
  [ -n "$pid" ] && [ -n "$start" ] && [ "$(starttime "$pid")" = "$start" ] \
    && [ "$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

# kill_pidfile PIDFILE: TERM, wait up to 10 s, then KILL; only a pid that is ours.
kill_pidfile() {
  local pid i
  alive "$1" || { rm -f "$1"; return 0; }
  read -r pid _ <"$1"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    alive "$1" || break
    sleep 0.1
  done
  alive "$1" && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}

wait_for() { # wait_for WHAT COMMAND...: retry COMMAND until it succeeds, bounded.
  local what=$1 i
  shift
  for i in $(seq 1 "$READY_TRIES"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "skip: $what did not become ready in $((READY_TRIES / 2)) s"
  return 1
}

# ---- etcd ------------------------------------------------------------------------------

etcd_ports() { # etcd_ports NAME -> "client peer" lines, one per member
  case "$1" in
    etcd1) echo "23790 23800" ;;
    etcd3) printf '%s\n' "23791 23801" "23792 23802" "23793 23803" ;;
  esac
}

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$1/health" | grep -q '"health":"true"'; }

start_etcd() {
  local name=$1 dir="$STATE/$1" i=0 cluster="" c p
  ensure etcd-server || return 1
  while read -r c p; do
    i=$((i + 1)); cluster="${cluster:+$cluster,}m$i=http://127.0.0.1:$p"
  done < <(etcd_ports "$name")
  i=0
  while read -r c p; do
    i=$((i + 1))
    mkdir -p "$dir/m$i"
    setsid etcd --name "m$i" --data-dir "$dir/m$i/data" \
      --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "boxoffice-$name" \
      --listen-metrics-urls "" \
      </dev/null >"$dir/m$i.log" 2>&1 &
    record_pid "$dir/m$i.pid" $!
  done < <(etcd_ports "$name")
  while read -r c p; do
    wait_for "$name (member on port $c)" etcd_healthy "$c" || return 1
  done < <(etcd_ports "$name")
}

# ---- postgres --------------------------------------------------------------------------

PG_PORT=25432

pg_user() { # the user the server runs as: never root.
  if ! is_root; then id -un; return; fi
  if id postgres >/dev/null 2>&1; then echo postgres; return; fi
  id boxoffice-peers >/dev/null 2>&1 || useradd --system --no-create-home boxoffice-peers
  echo boxoffice-peers
}

as_pg() { if is_root; then runuser -u "$(pg_user)" -- "$@"; else "$@"; fi; }

start_postgres() {
  local dir="$STATE/postgres" bin user
  ensure postgresql || return 1
  bin=$(pg_bin); user=$(pg_user)
  mkdir -p "$dir"
  is_root && chown "$user" "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { echo "skip: initdb failed: $(tail -1 "$dir/initdb.log")"; return 1; }
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o \
    "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c synchronous_commit=on -c fsync=on -c max_connections=300 -c shared_buffers=256MB" \
    start >"$dir/pg_ctl.log" 2>&1 || { echo "skip: postgres did not start: $(tail -1 "$dir/postgres.log")"; return 1; }
  record_pid "$dir/postgres.pid" "$(head -1 "$dir/data/postmaster.pid")"
}

stop_postgres() {
  local dir="$STATE/postgres"
  if alive "$dir/postgres.pid"; then
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || kill_pidfile "$dir/postgres.pid"
  fi
  rm -f "$dir/postgres.pid"
}

# ---- redis -----------------------------------------------------------------------------

redis_port() { case "$1" in redis) echo 26379 ;; redis-aof) echo 26380 ;; esac; }

start_redis() {
  local name=$1 dir="$STATE/$1" port persistence
  port=$(redis_port "$name")
  ensure redis-server || return 1
  mkdir -p "$dir"
  if [ "$name" = redis-aof ]; then
    persistence=(--appendonly yes --appendfsync always)
  else
    persistence=(--appendonly no)
  fi
  setsid redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" "${persistence[@]}" \
    --daemonize no --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
  record_pid "$dir/redis.pid" $!
  wait_for "$name" sh -c "redis-cli -p $port ping | grep -q PONG"
}

# ---- commands --------------------------------------------------------------------------

running() { # running NAME: every process of NAME that this script started is alive
  local f found=0
  for f in "$STATE/$1"/*.pid; do
    [ -e "$f" ] || continue
    alive "$f" || return 1
    found=1
  done
  [ "$found" = 1 ]
}

url() {
  case "$1" in
    etcd1 | etcd3) etcd_ports "$1" | awk '{printf "%shttp://127.0.0.1:%s", (NR>1?",":""), $1} END {print ""}' ;;
    postgres) echo "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" ;;
    redis | redis-aof) echo "redis://127.0.0.1:$(redis_port "$1")/" ;;
  esac
}

stop() {
  local f
  [ -d "$STATE/$1" ] || { echo "$1: not started by this script"; return 0; }
  [ "$1" = postgres ] && stop_postgres
  for f in "$STATE/$1"/*.pid; do
    [ -e "$f" ] && kill_pidfile "$f"
  done
  rm -rf "${STATE:?}/$1"
  echo "$1: stopped"
}

start() {
  if running "$1"; then echo "$1: already running"; return 0; fi
  stop "$1" >/dev/null # leftovers of a half-started or crashed run
  mkdir -p "$STATE"
  chmod 755 "$STATE"
  local ok=0
  case "$1" in
    etcd1 | etcd3) start_etcd "$1" || ok=1 ;;
    postgres) start_postgres || ok=1 ;;
    redis | redis-aof) start_redis "$1" || ok=1 ;;
  esac
  if [ "$ok" != 0 ]; then
    stop "$1" >/dev/null
    return 1
  fi
  echo "$1: started ($(url "$1"))"
}

status() {
  if running "$1"; then echo "$1: running ($(url "$1"))"; else echo "$1: not running"; fi
}

main() {
  local cmd=${1:-status} what=${2:-all} p rc=0
  case "$cmd" in start | stop | status | url) ;; *)
    echo "usage: $0 start|stop|status|url [etcd1|etcd3|postgres|redis|redis-aof|all]" >&2; exit 2 ;;
  esac
  if [ "$what" = all ]; then
    [ "$cmd" = url ] && { echo "url needs one peer" >&2; exit 2; }
    for p in $PEERS; do "$cmd" "$p" || rc=1; done
    exit "$rc"
  fi
  case " $PEERS " in *" $what "*) ;; *) echo "no peer $what ($PEERS)" >&2; exit 2 ;; esac
  "$cmd" "$what"
}

main "$@"
