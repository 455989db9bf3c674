#!/usr/bin/env bash
# Whole-process times of the two-layer DMFT Monte Carlo (README "DMFT Monte Carlo"): old and new builds interleaved
# (new, old, new) for m = 1..4 at 60 steps x 20 000 samples, then the new build alone at 200 and 400 steps x 4 000.
# Usage: bash bench/dmft-committee-times.sh "dotnet OLD/statphys.dll" "dotnet NEW/statphys.dll"
# Prints: case, build, load average, wall s, user CPU s, peak RSS KB.
set -uo pipefail
OLD=${1:?old statphys command}
NEW=${2:?new statphys command}
out=$(mktemp -d)
run() {
  local label=$1 bin=$2; shift 2
  local l t
  l=$(cut -d' ' -f1 /proc/loadavg)
  t=$( { /usr/bin/time -f "%e %U %M" ${!bin} dmft committee "$@" --replicas 1 --no-kernels --out "$out/$bin.json" 2>&1 >/dev/null; } | tail -1)
  echo "$label $bin load=$l $t"
}
for v in "1 --v-teacher 1" "1,0.5" "1,0.5,0.25" "1,0.5,0.25,0.125"; do
  m=$(echo "$v" | cut -d' ' -f1 | tr ',' '\n' | wc -l)
  for bin in NEW OLD NEW; do
    # shellcheck disable=SC2086
    run "m=$m 60x20000" $bin --v $v --t-end 12 --dt 0.2 --mc-samples 20000
  done
done
for te in 40 80; do
  run "m=2 $((te * 5))x4000" NEW --t-end $te --dt 0.2 --mc-samples 4000
done
rm -rf "$out"
