#!/usr/bin/env bash
# Sweep measurements (not timed tests): 200 `online linear` points as one in-process sweep against 200 separate
# `statphys online linear` processes, and the parallel speed-up of a Monte-Carlo-free sweep (DMFT exact closure).
# usage: bench/sweep/measure.sh [CONFIG]   (after ./build.sh build)
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=${1:-Release}
S=$PWD/src/StatPhysFs.Cli/bin/$CONFIG/net10.0/statphys.dll
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

cat >"$work/ol200.json" <<'SPEC'
{"command": "online linear", "fixed": {"noise-var": 0.1, "t-end": 10}, "axes": {"lr": {"from": 0.05, "to": 1.9, "points": 200}}, "record": ["m", "q", "eg"]}
SPEC
t0=$(now); dotnet "$S" sweep run "$work/ol200.json" --out "$work/ol" --parallel 1 2>/dev/null; t1=$(now)
inproc=$(echo "$t1 - $t0" | bc)
# The same 200 learning rates as the sweep's axis (linear spacing, endpoints exact).
awk 'BEGIN { for (k = 0; k < 200; k++) printf "%.17g\n", (k == 199) ? 1.9 : 0.05 + (k / 199) * (1.9 - 0.05) }' >"$work/lrs"
t0=$(now)
i=0; while read -r lr; do dotnet "$S" online linear --noise-var 0.1 --t-end 10 --lr "$lr" --out "$work/sep-$i.json"; i=$((i + 1)); done <"$work/lrs"
t1=$(now)
separate=$(echo "$t1 - $t0" | bc)
echo "200 online linear points: one in-process sweep (--parallel 1, start-up included) $inproc s;" \
  "200 separate processes $separate s; ratio $(echo "scale=1; $separate / $inproc" | bc)x"

cat >"$work/dmft.json" <<'SPEC'
{"command": "dmft glm", "fixed": {"exact": true, "dt": 0.1, "t-end": 30}, "axes": {"alpha": {"from": 0.5, "to": 4, "points": 16, "spacing": "log"}, "tau": [0.5, 1, 1.5]}, "record": ["test_loss"]}
SPEC
for rep in 1 2 3; do
  for p in 1 2; do
    rm -rf "$work/d$p"; t0=$(now); dotnet "$S" sweep run "$work/dmft.json" --out "$work/d$p" --parallel "$p" 2>/dev/null; t1=$(now)
    echo "$p $(echo "$t1 - $t0" | bc)" >>"$work/times"
  done
done
med() { awk -v p="$1" '$1 == p { print $2 }' "$work/times" | sort -g | sed -n 2p; }
echo "48-point DMFT exact-closure sweep (t-end 30): median wall --parallel 1 $(med 1) s, --parallel 2 $(med 2) s," \
  "speed-up $(echo "scale=2; $(med 1) / $(med 2)" | bc)x (load average now $(cut -d' ' -f1 /proc/loadavg))"
