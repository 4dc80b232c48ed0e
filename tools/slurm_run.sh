#!/usr/bin/env bash
# What tools/slurm_train.sh and tools/slurm_test.sh run: TOOL (train.py or
# test.py, next to this script) as one Slurm task per GPU (srun; mmengine
# reads the SLURM_* variables), with --launcher slurm and the remaining
# arguments:
#   tools/slurm_run.sh TOOL PARTITION JOB_NAME [TOOL arguments]
# GPUS (default 8) tasks, GPUS_PER_NODE (default 8) per machine,
# CPUS_PER_TASK (default 5) cores each; SRUN_ARGS (e.g.
# "--quotatype=auto") pass on to srun; PYTHON picks the interpreter
# (default: python).
set -e
TOOL=$1
PARTITION=$2
JOB_NAME=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

# SRUN_ARGS is split into words on purpose (several srun options).
# shellcheck disable=SC2086
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "${PYTHON:-python}" -u "$(dirname "$0")/$TOOL" "${@:4}" --launcher=slurm
