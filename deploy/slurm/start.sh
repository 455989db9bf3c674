#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine without systemd: munged (as the munge user), slurmctld, slurmd.
# usage: deploy/slurm/start.sh [DIR]   (DIR: state, spool, PID and log files; default a new temporary folder)
# Prints DIR on standard output. Use the cluster with  export SLURM_CONF=DIR/slurm.conf ; stop it with
# deploy/slurm/stop.sh DIR  (by PID).
set -euo pipefail
dir=${1:-$(mktemp -d /tmp/statphys-slurm.XXXXXX)}
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
dir=$(cd "$dir" && pwd)
chmod 0755 "$dir"   # munged (the munge user) must reach its subfolder
node=$(hostname -s)
cpus=$(nproc)
log() { echo "deploy/slurm/start.sh: $*" >&2; }

cat >"$dir/slurm.conf" <<CONF
# One-node cluster for tests (written by deploy/slurm/start.sh).
ClusterName=statphys
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=300
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

# munged: its socket directory must belong to the munge user.
chown munge:munge "$dir/munge"; chmod 0700 "$dir/munge"
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- munged --socket=/run/munge/munge.socket.2 --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" --force
for _ in $(seq 50); do [[ -s $dir/munge/munged.pid ]] && break; sleep 0.1; done
cp "$dir/munge/munged.pid" "$dir/munged.pid"

export SLURM_CONF=$dir/slurm.conf
slurmctld -i -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf" -N "$node"
# Up when the node is idle.
for _ in $(seq 100); do
  if sinfo -h -o %t 2>/dev/null | grep -q idle; then
    log "cluster up in $dir (node $node, $cpus CPUs)"
    echo "$dir"
    exit 0
  fi
  sleep 0.1
done
log "the node did not become idle; logs in $dir"
tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
