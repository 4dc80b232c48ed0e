#!/usr/bin/env bash
# Train with GPUS processes per machine through torchrun (CPU processes with
# gloo where there is no GPU):
#   tools/dist_train.sh CONFIG GPUS [tools/train.py options]
# Several machines: run it on each with the same MASTER_ADDR (the IP of node
# 0) and PORT, NNODES machines in all and this machine's NODE_RANK, e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.1.1.1 PORT=29500 \
#       tools/dist_train.sh CONFIG 8        # on 10.1.1.1
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.1.1.1 PORT=29500 \
#       tools/dist_train.sh CONFIG 8        # on the second machine
# PYTHON picks the interpreter (default: python).
set -e
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [tools/train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
