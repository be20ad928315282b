# shellcheck shell=bash
# Daemons of the node: started detached inside the node's network namespace,
# recorded by PID (and executable, so a reused PID is never signalled), and
# stopped by that PID only.

# alive PID: the process exists and is not a zombie.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$(awk '{ print $1 }' <<<"${stat##*) }")" != Z ]
}

# start_daemon NAME BINARY ARGS...: starts BINARY in the node netns in a new
# session; output goes to $E2E_LOGS/NAME.log.
start_daemon() {
  local name=$1 exe=$2
  shift
  mkdir -p "$PIDS" "$E2E_LOGS"
  # nsenter (no --fork) and setsid (not a group leader here) both exec, so $! is the daemon's PID.
  nsenter --net="$NETNS" -- setsid "$@" >>"$E2E_LOGS/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  readlink -f "$exe" >"$PIDS/$name.exe"
  sleep 0.2
  alive "$pid" || { tail -n 30 "$E2E_LOGS/$name.log" >&2; die "$name exited at once (log: $E2E_LOGS/$name.log)"; }
}

# daemon_pid NAME prints the PID of daemon NAME if it is running as the
# executable it was started as; fails otherwise.
daemon_pid() {
  local pid exe
  pid=$(cat "$PIDS/$1.pid" 2>/dev/null) || return 1
  exe=$(cat "$PIDS/$1.exe" 2>/dev/null) || return 1
  alive "$pid" && [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] && echo "$pid"
}

# stop_pid PID [TIMEOUT]: SIGTERM, then SIGKILL after TIMEOUT seconds (default 15).
stop_pid() {
  local pid=$1 timeout=${2:-15}
  kill -TERM "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + timeout))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    log "PID $pid ignored SIGTERM for ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  wait "$pid" 2>/dev/null || true # reap it if it is our child
}

# stop_daemon NAME [TIMEOUT]: stops daemon NAME if it runs; forgets its PID.
stop_daemon() {
  local pid
  if pid=$(daemon_pid "$1"); then
    log "stopping $1 (PID $pid)"
    stop_pid "$pid" "${2:-15}"
  fi
  rm -f "$PIDS/$1.pid" "$PIDS/$1.exe"
}

# stop_daemons NAME...: stops several daemons at once (SIGTERM to all, then waits).
stop_daemons() {
  local n pid stopping=()
  for n in "$@"; do
    if pid=$(daemon_pid "$n"); then
      log "stopping $n (PID $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      stopping+=("$pid")
    fi
    rm -f "$PIDS/$n.pid" "$PIDS/$n.exe"
  done
  for pid in "${stopping[@]}"; do stop_pid "$pid" 15; done
}
