#!/usr/bin/env bash
# One prepared full-size GPU check (bench/gpu_check.py holds the logic and its documentation).
#   bash bench/gpu_check.sh                          # full size on the GPU, random weights, writes gpu_check.json
#   bash bench/gpu_check.sh --tiny --out /tmp/g.json # the same code on tiny models, on a CPU
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$here/../.venv/bin/python" ]; then python="$here/../.venv/bin/python"; else python=python3; fi
fi
exec "$python" "$here/gpu_check.py" "$@"
