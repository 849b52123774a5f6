#!/usr/bin/env bash
# Create the `gpu` and `cpu` work pools that prefect.yaml's deployments use; idempotent.
#
#   infra/work-pools.sh                          process pools (local machine, VMs)
#   WORK_POOL_TYPE=kubernetes infra/work-pools.sh  Kubernetes pools from infra/kubernetes/
#
# Talks to the server in PREFECT_API_URL (or the active profile). An existing process
# pool is left as it is; an existing Kubernetes pool gets the template from this checkout.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFECT="${PREFECT:-$ROOT/.venv/bin/prefect}"
TYPE="${WORK_POOL_TYPE:-process}"

for pool in gpu cpu; do
  args=()
  case "$TYPE" in
    process) ;;
    kubernetes) args=(--base-job-template "$ROOT/infra/kubernetes/$pool-base-job-template.json") ;;
    *) echo "WORK_POOL_TYPE=$TYPE: expected process or kubernetes" >&2; exit 2 ;;
  esac
  if "$PREFECT" work-pool inspect "$pool" >/dev/null 2>&1; then
    if [[ "$TYPE" == kubernetes ]]; then
      "$PREFECT" work-pool update "$pool" "${args[@]}" >/dev/null
      echo "work pool $pool: template updated"
    else
      echo "work pool $pool: exists"
    fi
  else
    "$PREFECT" work-pool create "$pool" --type "$TYPE" "${args[@]}" >/dev/null
    echo "work pool $pool: created ($TYPE)"
  fi
done
