#!/usr/bin/env bash
# What tools/dist_train.sh and tools/dist_test.sh run: TOOL (train.py or
# test.py, next to this script) in GPUS processes on this machine through
# torchrun, with --launcher pytorch and the remaining arguments:
#   tools/dist_run.sh TOOL GPUS [TOOL arguments]
# NNODES, NODE_RANK, MASTER_ADDR and PORT place the machine in a multi-node
# job (see tools/dist_train.sh); PYTHON picks the interpreter (default:
# python).
set -e
TOOL=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/$TOOL" \
    "${@:3}" \
    --launcher pytorch
