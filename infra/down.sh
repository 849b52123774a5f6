#!/usr/bin/env bash
# Stop what infra/up.sh started: the workers (and any flow runs they are running), then
# the server. The server's database and the object store stay in .digitflow/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SYSTEM="${DIGITFLOW_STATE:-$ROOT/.digitflow}/system"

ours() {  # ours PID: a prefect process (a stale pid file may name a pid reused since)
  kill -0 "$1" 2>/dev/null && grep -q prefect "/proc/$1/cmdline" 2>/dev/null
}

signal() {  # signal SIG PID: the process group up.sh started with setsid, else the process
  kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null || true
}

wait_gone() {  # wait_gone PID SECONDS
  local i
  for ((i = 0; i < $2 * 2; i++)); do
    ours "$1" || return 0
    sleep 0.5
  done
  return 1
}

stop() {  # stop NAME
  local file="$SYSTEM/$1.pid" pid
  pid="$(cat "$file")"
  if ! ours "$pid"; then
    echo "$1: not running"
  else
    # A Prefect 3.8 worker takes SIGTERM as "finish what runs" and a second one as
    # "stop now"; an idle one can hang after the first, so the second follows soon.
    signal TERM "$pid"
    wait_gone "$pid" 5 || { signal TERM "$pid"; wait_gone "$pid" 5; } ||
      { signal KILL "$pid"; wait_gone "$pid" 5; } || true
    if ours "$pid"; then echo "$1: still running (pid $pid)" >&2; else echo "$1: stopped"; fi
  fi
  rm -f "$file"
}

shopt -s nullglob
pids=()
for file in "$SYSTEM"/worker-*.pid; do
  stop "$(basename "$file" .pid)" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
if [[ -f "$SYSTEM/server.pid" ]]; then stop server; fi
rm -f "$SYSTEM/env"
