#!/usr/bin/env bash
# Stops the cluster of tests/slurm/start-cluster.sh (its slurmd and slurmctld; munged stays).
set -uo pipefail
dir="${1:-/tmp/lossgeom-slurm}"
pids=()
for daemon in slurmd slurmctld; do
    if [ -s "$dir/$daemon.pid" ]; then
        pid="$(cat "$dir/$daemon.pid")"
        kill "$pid" 2>/dev/null && pids+=("$pid")
    fi
done
for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
done
# The configless slurmd's link to its configuration, if it points into this cluster's folder.
case "$(readlink /run/slurm/conf 2>/dev/null)" in "$dir"/*) rm -f /run/slurm/conf ;; esac
exit 0
