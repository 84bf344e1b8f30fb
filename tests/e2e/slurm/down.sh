#!/usr/bin/env bash
# Stop the daemons tests/e2e/slurm/up.sh STATE_DIR started, by the pids they wrote, and remove the config links.
set -uo pipefail
D=${1:?usage: down.sh STATE_DIR}
for f in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
  [ -s "$f" ] || continue
  p=$(cat "$f")
  kill "$p" 2>/dev/null || continue
  for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$p" 2>/dev/null  # still there after 30 s: the next cluster needs its ports
done
for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  [ "$(readlink "$f")" = "$D/${f##*/}" ] && rm -f "$f"
done
exit 0
