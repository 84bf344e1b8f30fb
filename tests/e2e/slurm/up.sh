#!/usr/bin/env bash
# Start a throw-away single-node SLURM cluster (Debian 12's slurm 22.05 + munge) as root, without
# systemd, for tests/e2e/test_slurm.py. Usage: tests/e2e/slurm/up.sh STATE_DIR. Every daemon writes its pid
# under STATE_DIR, so tests/e2e/slurm/down.sh STATE_DIR stops exactly these processes.
# The node advertises one GPU (gres File=/dev/null) so `--gpus=1` jobs schedule without real hardware.
set -euo pipefail
D=${1:?usage: up.sh STATE_DIR}
export PATH="$PATH:/usr/sbin:/sbin"
for tool in slurmctld slurmd munged sinfo; do
  command -v "$tool" >/dev/null || { echo "$tool not installed: run .ci/system-packages.sh (as root)" >&2; exit 1; }
done
mkdir -p "$D"/{state,spool,log,munge} /etc/slurm
chmod 755 "$D/munge"; chown munge:munge "$D/munge"
# getconf, not nproc: nproc honours OMP_NUM_THREADS, which a caller may have set to 1
H=$(hostname -s); CPUS=$(getconf _NPROCESSORS_ONLN)
MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))

# munge: the package's postinst normally creates the key; make one if it did not.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
runuser -u munge -- /usr/sbin/munged --socket="$D/munge/munge.socket.2" --pid-file="$D/munge/munged.pid" \
  --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed"

cat > "$D/slurm.conf" <<CONF
ClusterName=audiofold-test
SlurmctldHost=$H
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket.2
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
# finished jobs stay visible to scontrol/squeue for the whole test (a run there takes 20+ min on a
# busy 2-core machine; 600 s purged the first jobs' records before the test read them)
MinJobAge=7200
GresTypes=gpu
NodeName=$H NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
echo "NodeName=$H Name=gpu File=/dev/null" > "$D/gres.conf"
# The default path, not SLURM_CONF: the snakemake jobstep plugin strips SLURM_* variables before srun.
ln -sf "$D/slurm.conf" /etc/slurm/slurm.conf
ln -sf "$D/gres.conf" /etc/slurm/gres.conf

/usr/sbin/slurmctld -i
/usr/sbin/slurmd
for _ in $(seq 60); do
  # idle, and answered by the daemons started here (not a previous cluster's still shutting down)
  if sinfo -h -o %T 2>/dev/null | grep -q idle && kill -0 "$(cat "$D/slurmctld.pid" 2>/dev/null)" 2>/dev/null \
     && kill -0 "$(cat "$D/slurmd.pid" 2>/dev/null)" 2>/dev/null; then
    sinfo; exit 0
  fi
  sleep 1
done
echo "SLURM node never became idle; logs in $D/log" >&2
tail -n 20 "$D"/log/*.log "$D"/munge/munged.log >&2
exit 1
