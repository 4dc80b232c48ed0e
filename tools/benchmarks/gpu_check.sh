#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md in one run (about 6 minutes on
# one H100/H200, each step capped so the whole stays under 10), written as
# markdown tables to $OUT (default work_dirs/gpu_check):
#   env.txt                  GPU, driver, torch
#   encode_b16.md            ViT-B/16 bf16 image encode (batch 512) and text
#                            encode vs open_clip and transformers, MFU; the
#                            zero-shot ImageNet classifier build (1000 x 80)
#   train_b16.md             B/16 contrastive train step (batch 256, bf16
#                            autocast, AdamW) vs open_clip and transformers:
#                            samples/s, MFU, peak step memory, without and
#                            with gradient checkpointing; with patch
#                            dropout 0.5 (vs open_clip)
#   train_b16_compile.md     the same under torch.compile (vs open_clip)
#   strategies.md            the DDP and the FSDP config, 20 iterations each
#                            on the same synthetic batches: losses side by
#                            side, samples/s, peak memory
#   pipeline.md              training input pipeline, samples/s per worker
#                            (this machine's CPU), and JPEG decoding on the
#                            GPU (nvJPEG) for DeviceDecodeDataPreprocessor
#   log.txt                  everything the steps printed
#
#   tools/benchmarks/gpu_check.sh                 # on the GPU machine
#   tools/benchmarks/gpu_check.sh --dry-run       # print the steps only
#   tools/benchmarks/gpu_check.sh --fetch-wheels  # here: wheels it lacks
#
# A GPU machine without mmclip's dependencies gets them from .whl/ (made by
# --fetch-wheels where pip can reach a registry; pure-Python wheels for
# CPython 3.12): they are installed into /tmp/site, nothing else changes.
set -uo pipefail
cd "$(dirname "$0")/../.."  # the repository root
OUT=${OUT:-work_dirs/gpu_check}
PY=${PYTHON:-python3}
WHEELS=.whl
# mmclip's pure-Python dependencies that a bare CUDA image with torch,
# torchvision, transformers, timm, OpenCV and scikit-image lacks.
PINNED=(mmengine==0.10.7 mmcv-lite==2.2.0 mmpretrain==1.2.0
        open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 webdataset==1.0.2
        braceexpand==0.1.7 addict==2.4.0 yapf==0.43.0 platformdirs==4.14.8
        termcolor==3.3.0 mat4py==0.6.0 modelindex==0.0.2 model-index==0.1.11
        ordered-set==4.1.0 importlib-metadata==10.2.0 lazy-importer==0.1.0
        'setuptools<82')

case "${1:-}" in
  --fetch-wheels)
    exec "$PY" -m pip download --no-deps --only-binary=:all: \
      --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d "$WHEELS" "${PINNED[@]}" ;;
  --dry-run) DRY=1 ;;
  "") DRY=0 ;;
  *) echo "usage: $0 [--dry-run | --fetch-wheels]" >&2; exit 2 ;;
esac

failed=()
# step NAME SECONDS COMMAND...: run one measurement with a time limit; a
# failure is reported at the end and does not stop the later steps.
step() {
  local name=$1 limit=$2; shift 2
  echo "+ [$name, at most ${limit}s] $*"
  [ "$DRY" = 1 ] && return 0
  if ! timeout "$limit" "$@" 2>&1 | tee -a "$OUT/log.txt"; then
    failed+=("$name")
  fi
}

if [ "$DRY" = 0 ]; then
  mkdir -p "$OUT"
  : > "$OUT/log.txt"
  if ! "$PY" -c 'import mmengine, mmpretrain, open_clip' 2>/dev/null; then
    ls "$WHEELS"/*.whl > /dev/null || {
      echo "mmengine/mmpretrain/open_clip missing and no $WHEELS/: run" \
           "'$0 --fetch-wheels' where pip works and carry $WHEELS" >&2
      exit 1; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    "$PY" -c 'import torch; print("torch", torch.__version__, "CUDA",
      torch.version.cuda, torch.cuda.get_device_name())'
    git log -1 --oneline 2>/dev/null; } > "$OUT/env.txt" 2>&1
  cat "$OUT/env.txt"
fi

BENCH=("$PY" tools/benchmarks/benchmark.py --device cuda --dtype bf16 --arch b16)
step encode 110 "${BENCH[@]}" --rows encode,zero-shot --image-batch 512 \
  --text-batch 512 --zs-classes 1000 --zs-templates 80 --repeats 10 \
  --out "$OUT/encode_b16.md"
step train 100 "${BENCH[@]}" --rows train --train-batch 256 \
  --grad-ckpt both --patch-dropout 0.5 --repeats 5 \
  --out "$OUT/train_b16.md"
step train-compile 200 "${BENCH[@]}" --rows train --train-batch 256 \
  --grad-ckpt off --compile --libraries mmclip,open_clip --repeats 5 \
  --out "$OUT/train_b16_compile.md"
step strategies 110 "$PY" -m torch.distributed.run --nproc_per_node 1 \
  tools/benchmarks/benchmark_strategies.py --iters 20 --out "$OUT/strategies.md"
step pipeline 60 "$PY" tools/benchmarks/benchmark.py --device cuda --rows pipeline \
  --repeats 3 --out "$OUT/pipeline.md"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed steps: ${failed[*]} (see $OUT/log.txt)" >&2
  exit 1
fi
[ "$DRY" = 1 ] || echo "tables in $OUT"
