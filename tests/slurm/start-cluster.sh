#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for tests/test_slurm.py and for trying the profile.
#
# Usage (as root, with Debian's slurm-wlm and munge installed):
#     tests/slurm/start-cluster.sh [DIR]        # default DIR: /tmp/lossgeom-slurm
#     export SLURM_CONF=DIR/slurm.conf          # what the script prints last
#     tests/slurm/stop-cluster.sh [DIR]
#
# Two partitions on the one node, named as in profiles/slurm/config.yaml: "cpu" (default)
# and "gpu". The node declares 8 CPUs and 2 GPUs whatever the machine has
# (SlurmdParameters=config_overrides; the GPUs are count-only GRES with no device files), so
# the project's profile runs unchanged: jobs that ask for a GPU are scheduled on the "gpu"
# partition with --gpus=1 and then run on the CPU (the test passes device=cpu).
#
# No accounting database: AccountingStorageType=accounting_storage/none, and the executor
# plugin queries job states with squeue (--slurm-status-command squeue), which needs finished
# jobs kept in slurmctld's memory for longer than its check interval (MinJobAge=600).
# SLURM's own record of every job is the job-completion log DIR/jobcomp.log
# (JobCompType=jobcomp/filetxt): one line per finished job with its id, name, partition,
# state and GRES, written by slurmctld, not by Snakemake.
# cgroups are avoided (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none), so it runs
# in containers.
set -euo pipefail

dir="${1:-/tmp/lossgeom-slurm}"
node="$(hostname -s)"
memory_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"

for tool in munged slurmctld slurmd sbatch squeue scontrol; do
    command -v "$tool" >/dev/null || {
        echo "start-cluster: '$tool' not found; install Debian's slurm-wlm and munge" >&2
        exit 1
    }
done
[ "$(id -u)" = 0 ] || { echo "start-cluster: must run as root" >&2; exit 1; }

if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    echo "start-cluster: a slurmctld or slurmd is already running (ports 6817/6818 taken);" \
        "stop it first (tests/slurm/stop-cluster.sh DIR)" >&2
    exit 1
fi
mkdir -p "$dir"/{state,spool,log}

# munge: the key comes with Debian's package; munged refuses to run as root.
[ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n | unmunge >/dev/null || { echo "start-cluster: munged did not start" >&2; exit 1; }

cat >"$dir/slurm.conf" <<EOF
ClusterName=lossgeom-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=6817
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldParameters=enable_configless
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MinJobAge=600
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
GresTypes=gpu
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=8 RealMemory=$memory_mb Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
PartitionName=gpu Nodes=$node MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
# Count-only GPUs: stand-in device files, so that slurmd reports the configured count.
touch "$dir/gpu0" "$dir/gpu1"
cat >"$dir/gres.conf" <<EOF
AutoDetect=off
NodeName=$node Name=gpu File=$dir/gpu[0-1]
EOF
touch "$dir/cgroup.conf"  # no cgroup settings: slurmd only needs the file

export SLURM_CONF="$dir/slurm.conf"
# -c: a clean start, without the jobs of an earlier cluster in the same folder.
slurmctld -c -f "$SLURM_CONF"
# Configless slurmd: it fetches the configuration from slurmctld and links it at
# /run/slurm/conf, where commands inside jobs find it (the executor plugin's job step drops
# SLURM_CONF from srun's environment).
slurmd --conf-server "127.0.0.1:6817"
for _ in $(seq 100); do
    if kill -0 "$(cat "$dir/slurmctld.pid" 2>/dev/null || echo 0)" 2>/dev/null \
        && sinfo -h -N -o "%T" 2>/dev/null | grep -qx idle; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.2
done
echo "start-cluster: the node did not become idle; see $dir/log/" >&2
sinfo -N -l >&2 || true
exit 1
