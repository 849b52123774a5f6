#!/usr/bin/env bash
# Bring the whole system up on this machine, in the background:
#   prefect server (API and UI) on 127.0.0.1:$PORT -> the gpu and cpu work pools ->
#   the deployments of prefect.yaml -> one process worker per GPU on `gpu` (one stand-in
#   worker without GPUs) and one on `cpu`.
# PIDs and logs land in .digitflow/system/; infra/down.sh stops everything. Running it
# again starts only what is not running and re-applies the deployments.
#
#   PORT=4200                  the server's port
#   DIGITFLOW_INBOX=…          what score-folder reads (default .digitflow/inbox here)
#   DIGITFLOW_STATE=…          instead of .digitflow/ for system/, prefect/ and inbox/
#   DIGITFLOW_STORE, DIGITFLOW_MNIST_SOURCE, AWS_*   passed on to the workers' flow runs
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PREFECT="$VENV/bin/prefect"
PORT="${PORT:-4200}"
STATE="${DIGITFLOW_STATE:-$ROOT/.digitflow}"
SYSTEM="$STATE/system"

[[ -x "$PREFECT" ]] || { echo "no $PREFECT: run \`make install\` first" >&2; exit 1; }
mkdir -p "$SYSTEM"

export PREFECT_HOME="$STATE/prefect"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export PREFECT_UI_API_URL="$PREFECT_API_URL"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DIGITFLOW_HOME="$ROOT"
export DIGITFLOW_INBOX="${DIGITFLOW_INBOX:-$STATE/inbox}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
[[ "$DIGITFLOW_INBOX" == s3://* ]] || mkdir -p "$DIGITFLOW_INBOX"

alive() {  # alive NAME: the process recorded in NAME.pid is running
  local pid
  pid="$(cat "$SYSTEM/$1.pid" 2>/dev/null)" || return 1
  kill -0 "$pid" 2>/dev/null
}

start() {  # start NAME COMMAND...: in its own session (down.sh stops the whole group)
  local name="$1"
  shift
  if alive "$name"; then
    echo "$name: already running (pid $(cat "$SYSTEM/$name.pid"))"
    return
  fi
  setsid "$@" >"$SYSTEM/$name.log" 2>&1 </dev/null &
  echo $! >"$SYSTEM/$name.pid"
  echo "$name: started (pid $!, log $SYSTEM/$name.log)"
}

healthy() {
  "$VENV/bin/python" - "$PREFECT_API_URL/health" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
PY
}

if ! alive server && healthy; then
  echo "something else answers on port $PORT: stop it or choose another PORT=…" >&2
  exit 1
fi
start server "$PREFECT" server start --host 127.0.0.1 --port "$PORT"
for _ in $(seq 120); do
  healthy && break
  alive server || { tail -n 20 "$SYSTEM/server.log" >&2; echo "prefect server exited" >&2; exit 1; }
  sleep 1
done
healthy || { echo "prefect server not healthy after 120 s: see $SYSTEM/server.log" >&2; exit 1; }

PREFECT="$PREFECT" bash "$ROOT/infra/work-pools.sh"
if ! "$PREFECT" deploy --all --no-prompt >"$SYSTEM/deploy.log" 2>&1; then
  tail -n 30 "$SYSTEM/deploy.log" >&2
  echo "prefect deploy --all failed: see $SYSTEM/deploy.log" >&2
  exit 1
fi
echo "deployments: retrain, train-model, score-folder applied (log $SYSTEM/deploy.log)"

# One worker per GPU, each pinned to its GPU and taking one run at a time. Without GPUs
# one stand-in worker takes the trainings side by side, one CPU thread pool each.
gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)"
fi
if ((gpus > 0)); then
  for ((i = 0; i < gpus; i++)); do
    start "worker-gpu-$i" env CUDA_VISIBLE_DEVICES="$i" "$PREFECT" worker start \
      --pool gpu --type process --name "gpu-$i@$(hostname)" --limit 1
  done
else
  threads=$(($(nproc) / 3 > 0 ? $(nproc) / 3 : 1))
  start worker-gpu-0 env CUDA_VISIBLE_DEVICES= TF_NUM_INTRAOP_THREADS="$threads" \
    TF_NUM_INTEROP_THREADS=1 "$PREFECT" worker start --pool gpu --type process \
    --name "gpu-standin@$(hostname)"
fi
start worker-cpu "$PREFECT" worker start --pool cpu --type process --name "cpu@$(hostname)"

cat >"$SYSTEM/env" <<EOF
export PREFECT_API_URL=$PREFECT_API_URL
export PREFECT_HOME=$PREFECT_HOME
EOF
cat <<EOF

digitflow is up.
  UI:      http://127.0.0.1:$PORT
  inbox:   $DIGITFLOW_INBOX   (score-folder reads it every 10 minutes and after each promotion)
  CLI:     source $SYSTEM/env, then e.g.
           prefect deployment run retrain/retrain
  stop:    infra/down.sh
EOF
