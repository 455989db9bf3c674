#!/usr/bin/env bash
# Install the Debian packages of a one-node Slurm cluster (slurmctld, slurmd, the client commands, munge).
# Needs root and apt. Fails loudly (non-zero exit) when the packages cannot be installed.
set -euo pipefail
if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
   && command -v munged >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "deploy/slurm/install.sh: must run as root (apt-get install)" >&2; exit 1
fi
command -v apt-get >/dev/null || { echo "deploy/slurm/install.sh: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
pkgs=(slurmctld slurmd slurm-client munge)
# A fresh machine may have no package lists yet: update only when the first try cannot find the packages.
if ! apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/tmp/statphys-slurm-apt.log 2>&1; then
  apt-get update -q >>/tmp/statphys-slurm-apt.log 2>&1 || true
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>/tmp/statphys-slurm-apt.log 2>&1 || {
    tail -20 /tmp/statphys-slurm-apt.log >&2
    echo "deploy/slurm/install.sh: apt-get install ${pkgs[*]} failed" >&2; exit 1; }
fi
# The munge package creates its key on install; make sure there is one.
if [[ ! -s /etc/munge/munge.key ]]; then
  if command -v mungekey >/dev/null; then mungekey --create --force; else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
echo "deploy/slurm/install.sh: $(sbatch --version) installed" >&2
