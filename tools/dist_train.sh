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
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [tools/train.py options]" >&2
    exit 2
fi
exec "$(dirname "$0")/dist_run.sh" train.py "$2" "$1" "${@:3}"
