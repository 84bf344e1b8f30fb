#!/usr/bin/env bash
# System tools the tests exercise for real, installed only when missing (run it any number of times):
#   ffmpeg                                  m4a/aac decoding (tests/unit/test_audio.py)
#   slurmctld slurmd slurm-client munge     a single-node SLURM cluster (tests/e2e/test_slurm.py)
#   chromium                                renders the Snakemake HTML report (tests/e2e/test_report_e2e.py)
# Installs with apt-get when run as root; otherwise it says what is missing and exits 0: the tests
# that need a missing tool skip, naming it (tests/conftest.py: requires_tool). Exits non-zero only
# when an install was attempted and failed. Called by `make test` and .ci/run.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # the slurm and munge daemons live in sbin
has() { command -v "$1" >/dev/null; }
need=()
has ffmpeg || need+=(ffmpeg)
{ has slurmctld && has slurmd && has squeue && has munged; } || need+=(slurmctld slurmd slurm-client munge)
{ has chromium || has chromium-browser; } || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! has apt-get; then
  echo "system packages missing: ${need[*]} (not root with apt-get, so not installed here; the tests" \
       "that need them skip). Install: sudo apt-get install --no-install-recommends ${need[*]}" >&2
  exit 0
fi
echo "installing system packages: ${need[*]}" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "apt-get could not install: ${need[*]}" >&2
  exit 1
fi
