#!/usr/bin/env bash
# Install a one-node SLURM cluster's packages (Debian/Ubuntu): slurmctld, slurmd, the client tools and
# munge. Idempotent and quiet: does nothing when they are already there. Needs root (or sudo).
set -euo pipefail

need=()
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sinfo >/dev/null 2>&1 || need+=(slurm-client)
command -v munged >/dev/null 2>&1 || need+=(munge)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "slurm/install.sh: missing ${need[*]} and no apt-get here; install SLURM and munge by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "slurm/install.sh: need root (or sudo) to install ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "slurm/install.sh: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# --no-install-recommends keeps out mail servers and docs. The daemons are not started here:
# start.sh starts them with the configuration it writes.
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
