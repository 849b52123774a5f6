#!/usr/bin/env bash
# prefect.yaml's build step: refuse to deploy without the two places the deployments name.
set -euo pipefail
missing=0
if [[ -z "${DIGITFLOW_HOME:-}" ]]; then
  echo "DIGITFLOW_HOME is not set: export the checkout the workers run the flows from," \
    "e.g. DIGITFLOW_HOME=\"\$PWD\" (infra/up.sh sets it)" >&2
  missing=1
elif [[ "$DIGITFLOW_HOME" != /* ]]; then
  echo "DIGITFLOW_HOME=$DIGITFLOW_HOME: give an absolute path (workers start elsewhere)" >&2
  missing=1
elif [[ ! -f "$DIGITFLOW_HOME/flows/score.py" ]]; then
  echo "DIGITFLOW_HOME=$DIGITFLOW_HOME holds no digitflow checkout (no flows/score.py)" >&2
  missing=1
fi
if [[ -z "${DIGITFLOW_INBOX:-}" ]]; then
  echo "DIGITFLOW_INBOX is not set: export the folder or s3://bucket/prefix that the" \
    "score-folder deployment reads (a relative folder is taken from DIGITFLOW_HOME)" >&2
  missing=1
fi
exit "$missing"
