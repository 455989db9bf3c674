#!/usr/bin/env bash
# The sweep on a real one-node Slurm cluster: install and start the cluster (deploy/slurm), submit a job array of
# a sweep through `statphys sweep slurm --submit --wait`, merge, and check the merged table equals the same sweep
# run locally in one process, byte for byte (deterministic ODE command; wall times left out). The cluster is
# stopped on every exit path. usage: .ci/sweep-slurm-test.sh [CONFIG] [SUMMARY_FILE]  (SUMMARY: "passed failed")
set -uo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-Release}
summary=${2:-}
statphys=(dotnet "$PWD/src/StatPhysFs.Cli/bin/$CONFIG/net10.0/statphys.dll")
spec=examples/sweeps/online-linear-ridge.json
work=$(mktemp -d /tmp/statphys-sweep-ci.XXXXXX)
chmod 0755 "$work"
cluster=""
passed=0; failed=0
ok() { echo "  passed: $1"; passed=$((passed + 1)); }
ko() { echo "  FAILED: $1" >&2; failed=$((failed + 1)); }
finish() {
  [[ -n $cluster ]] && bash deploy/slurm/stop.sh "$cluster"
  [[ -n $summary ]] && echo "$passed $failed" > "$summary"
  rm -rf "$work" "$cluster"
  echo "sweep on Slurm: $passed passed, $failed failed"
}
trap finish EXIT

if ! bash deploy/slurm/install.sh; then
  ko "install slurmctld slurmd slurm-client munge (apt)"; exit 1
fi
if cluster=$(bash deploy/slurm/start.sh "$work/cluster"); then ok "one-node cluster started"; else
  ko "one-node cluster started"; exit 1; fi
export SLURM_CONF=$cluster/slurm.conf

if "${statphys[@]}" sweep slurm "$spec" --out "$work/slurm" --tasks 4 --submit --wait --table "$work/slurm-table.csv"; then
  ok "job array submitted, waited for and merged"
else
  ko "job array submitted, waited for and merged"; cat "$work"/slurm/slurm-*.out >&2 2>/dev/null
fi
n=$(ls "$work"/slurm/points-*-of-4.jsonl 2>/dev/null | wc -l)
if [[ $n == 4 ]] && grep -q "sweep: 6 computed, 0 skipped, 0 failed" "$work"/slurm/slurm-*_3.out; then
  ok "each of the 4 array tasks ran its own shard"
else
  ko "each of the 4 array tasks ran its own shard (found $n shard files)"
fi

"${statphys[@]}" sweep run "$spec" --out "$work/local" --parallel 1 2>"$work/local.err"
if [[ $(cat "$work/local.err") == "sweep: 24 computed, 0 skipped, 0 failed" ]]; then ok "local run in one process"; else
  ko "local run in one process: $(cat "$work/local.err")"; fi
"${statphys[@]}" sweep merge "$work/local" --out "$work/local.csv" --no-wall-time
"${statphys[@]}" sweep merge "$work/slurm" --out "$work/slurm.csv" --no-wall-time
if [[ -s $work/local.csv ]] && cmp "$work/local.csv" "$work/slurm.csv"; then
  ok "Slurm table equals the local table bitwise ($(($(wc -l < "$work/local.csv") - 2)) rows)"
else
  ko "Slurm table equals the local table bitwise"; diff "$work/local.csv" "$work/slurm.csv" | head >&2
fi
(( failed == 0 ))
