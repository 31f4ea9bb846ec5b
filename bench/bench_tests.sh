#!/usr/bin/env bash
# Wall and CPU time of `make lint`, `make test-fast` and `make test`, run as the Makefile runs them
# (the same commands, without its install stamp, so nothing is reinstalled), with the load average
# before and after each: a wall time on a busy machine says little, CPU time and the load say why.
#
#   bench/bench_tests.sh            # lint, test-fast, test
#   bench/bench_tests.sh fast       # lint, test-fast
#   JOBS=0 bench/bench_tests.sh all # lint, test, in one process
#   bench/bench_tests.sh lint       # lint only
# Unlike make, a failing lint does not stop the timing of the tests (its rc is in the table). A target
# that fails keeps its log (its path is printed last) and makes the script exit 1.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-2}
which=${1:-both}
# The Makefile's TEST_ENV: one torch/BLAS thread per xdist worker (without it this times something else).
export HF_HUB_OFFLINE=1 PREFCLI_TESTING=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
logs=$(mktemp -d)
failed=()  # the logs of targets whose rc was not 0: kept, and named at the end
trap 'if [ ${#failed[@]} -eq 0 ]; then rm -rf "$logs"; fi' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }

rows=()
measure() {  # NAME COMMAND...: one row of the table, the command's last line as its result
  local name=$1 before after rc
  shift
  before=$(load)
  TIMEFORMAT="%R %U %S"
  { time "$@" >"$logs/$name.log" 2>&1; } 2>"$logs/$name.time"
  rc=$?
  after=$(load)
  if [ "$rc" -ne 0 ]; then failed+=("$logs/$name.log"); fi
  read -r wall user sys <"$logs/$name.time"
  rows+=("$(awk -v n="$name" -v w="$wall" -v u="$user" -v s="$sys" -v b="$before" -v a="$after" -v r="$rc" \
    'BEGIN { printf "%-10s %8.1f %8.1f %6.2f   %-16s %-16s %3d", n, w, u + s, (u + s) / w, b, a, r }')  $(tail -n 1 "$logs/$name.log")")
}

measure lint sh -c "$PY -m ruff check . && $PY -m ruff format --check ."
if [ "$which" = both ] || [ "$which" = fast ]; then
  measure test-fast "$PY" -m pytest -n "$JOBS" --dist loadscope -m "not slow"
fi
if [ "$which" = both ] || [ "$which" = all ]; then
  measure test "$PY" -m pytest -n "$JOBS" --dist loadscope --durations=20
fi

echo "$(nproc --all) cores, JOBS=$JOBS, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null)"
printf '%-10s %8s %8s %6s   %-16s %-16s %3s  %s\n' what wall_s cpu_s cpu/wall "load before" "load after" rc result
printf '%s\n' "${rows[@]}"
for f in ${failed[@]+"${failed[@]}"}; do echo "failed: log kept at $f"; done
[ ${#failed[@]} -eq 0 ]  # the script's status: non-zero when a target failed
