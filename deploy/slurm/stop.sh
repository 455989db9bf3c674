#!/usr/bin/env bash
# Stop the one-node cluster that deploy/slurm/start.sh DIR started: slurmd, slurmctld, munged, by their PID files.
set -uo pipefail
dir=${1:?usage: deploy/slurm/stop.sh DIR}
for name in slurmd slurmctld munged; do
  f=$dir/$name.pid
  [[ -s $f ]] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
echo "deploy/slurm/stop.sh: stopped the cluster of $dir" >&2
