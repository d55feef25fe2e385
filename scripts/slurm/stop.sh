#!/usr/bin/env bash
# Stop the one-node test cluster that start.sh started (slurmd, slurmctld, munged). Jobs still
# running are killed. Leaves a site SLURM (a slurm.conf this repository did not write) alone.
set -euo pipefail
CONF=/etc/slurm/slurm.conf
if [ -f "$CONF" ] && ! grep -q "Written by spelab scripts/slurm/start.sh" "$CONF"; then
  echo "slurm/stop.sh: $CONF is not ours; not stopping anything" >&2; exit 1
fi
stop_pidfile() {  # $1: pid file, $2: name
  [ -f "$1" ] || return 0
  local pid; pid="$(cat "$1")"
  kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { echo "slurm/stop.sh: stopped $2"; return 0; }; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true; echo "slurm/stop.sh: killed $2"
}
stop_pidfile /run/slurmd.pid slurmd
stop_pidfile /run/slurmctld.pid slurmctld
stop_pidfile /run/munge/munged.pid munged
