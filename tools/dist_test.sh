#!/usr/bin/env bash
# Evaluate a checkpoint with GPUS processes per machine through torchrun
# (CPU processes with gloo where there is no GPU):
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options]
# Several machines: NNODES, NODE_RANK, MASTER_ADDR and PORT as for
# tools/dist_train.sh. PYTHON picks the interpreter (default: python).
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [tools/test.py options]" >&2
    exit 2
fi
exec "$(dirname "$0")/dist_run.sh" test.py "$3" "$1" "$2" "${@:4}"
