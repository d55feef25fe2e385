#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (controller + compute node, run as root) so that
# `hydra/launcher=slurm` sweeps and the SLURM tests run here. Idempotent: returns at once when the
# cluster is already up with the same configuration. Exits non-zero, saying why, when SLURM cannot be
# started. On a machine that already has its own SLURM configuration it changes nothing.
#   env: SPELAB_SLURM_CPUS (default: nproc), SPELAB_SLURM_PARTITION (default: debug),
#        SPELAB_SLURM_WAIT_S (default: 60)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CONF=/etc/slurm/slurm.conf
MARK="Written by spelab scripts/slurm/start.sh"
STATE_DIR=/var/lib/slurm
LOG_DIR=/var/log/slurm
WAIT_S="${SPELAB_SLURM_WAIT_S:-60}"
die() { echo "slurm/start.sh: $*" >&2; exit 1; }

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n1 | tr -d '*~#!%$@^-'; }
node_up() { case "$(node_state)" in idle|mixed|allocated|completing) return 0;; *) return 1;; esac; }

# A site cluster (a slurm.conf we did not write) is used as is.
if [ -f "$CONF" ] && ! grep -q "$MARK" "$CONF"; then
  if command -v sinfo >/dev/null 2>&1 && sinfo -h >/dev/null 2>&1; then
    echo "slurm/start.sh: using this machine's own SLURM ($CONF); nothing started"; exit 0
  fi
  die "$CONF exists but was not written by this script and sinfo fails; fix that cluster or move $CONF away"
fi

host="$(hostname -s)"
cpus="${SPELAB_SLURM_CPUS:-$(nproc)}"
mem_total_mb=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
mem_mb=$(( mem_total_mb * 9 / 10 ))          # a margin below what slurmd measures, or it drains the node
partition="${SPELAB_SLURM_PARTITION:-debug}"
wanted="$(sed -e "s/@HOST@/$host/g" -e "s/@CPUS@/$cpus/g" -e "s/@MEM_MB@/$mem_mb/g" \
  -e "s/@PARTITION@/$partition/g" -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@LOG_DIR@|$LOG_DIR|g" \
  "$here/slurm.conf.in")"

conf_same=0
[ -f "$CONF" ] && [ "$(cat "$CONF")" = "$wanted" ] && conf_same=1
if [ $conf_same -eq 1 ] && node_up; then
  echo "slurm/start.sh: SLURM is up (node $host: $(node_state))"; exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root to start munged/slurmctld/slurmd (try: sudo $0)"
bash "$here/install.sh" || die "could not install slurmctld/slurmd/munge (scripts/slurm/install.sh)"

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pidfile() {  # stop the daemon whose pid file is $1 and wait for it to go
  pid_alive "$1" || return 0
  local pid; pid="$(cat "$1")"; kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# --- munge: key and daemon ---
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null 2>&1; then mungekey --create --keyfile=/etc/munge/munge.key --force
  else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  if id munge >/dev/null 2>&1; then runuser -u munge -- /usr/sbin/munged
  else /usr/sbin/munged --force; fi
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 \
    || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# --- slurm configuration: (re)write it, restarting the daemons if it changed ---
mkdir -p "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$LOG_DIR" /etc/slurm
if [ $conf_same -eq 0 ]; then
  stop_pidfile /run/slurmd.pid
  stop_pidfile /run/slurmctld.pid
  printf '%s\n' "$wanted" > "$CONF"
  echo "slurm/start.sh: wrote $CONF (node $host, CPUs=$cpus, RealMemory=${mem_mb}MB, partition $partition)"
fi

# --- daemons ---
if ! pid_alive /run/slurmctld.pid || ! scontrol ping >/dev/null 2>&1; then
  stop_pidfile /run/slurmctld.pid
  slurmctld || die "slurmctld failed to start (see $LOG_DIR/slurmctld.log)"
fi
for _ in $(seq "$WAIT_S"); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 1; done
scontrol ping 2>/dev/null | grep -q UP \
  || die "slurmctld does not answer after ${WAIT_S}s; last log lines:
$(tail -n 15 "$LOG_DIR/slurmctld.log" 2>/dev/null)"
if ! pid_alive /run/slurmd.pid; then
  slurmd || die "slurmd failed to start (see $LOG_DIR/slurmd.log)"
fi

# --- wait for the node; a node left down/drained by an earlier unclean stop is resumed once ---
resumed=0
for _ in $(seq "$WAIT_S"); do
  node_up && { echo "slurm/start.sh: SLURM is up (node $host: $(node_state))"; exit 0; }
  case "$(node_state)" in
    down|drained|draining|drain|fail)
      if [ $resumed -eq 0 ]; then scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true; resumed=1; fi ;;
  esac
  sleep 1
done
die "node $host is not idle after ${WAIT_S}s (state: '$(node_state)'; reason: $(sinfo -h -N -o '%E' 2>/dev/null));
slurmd log tail:
$(tail -n 15 "$LOG_DIR/slurmd.log" 2>/dev/null)"
