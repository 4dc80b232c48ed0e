"""Evaluate a checkpoint with a config (e.g. zero-shot classification).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--out preds.json|preds.pkl] [--show-dir DIR]
        [--cfg-options k=v ...] [--launcher pytorch]

CHECKPOINT is an mmclip checkpoint (converted with
``tools/model_converters/clip_to_mmclip.py`` or written by training); it is
loaded with ``weights_only=True``. Several processes (GPUs, or CPU processes
with gloo): ``tools/dist_test.sh CONFIG CHECKPOINT N``; on Slurm
``tools/slurm_test.sh PARTITION JOB CONFIG CHECKPOINT``. A missing config,
checkpoint or data folder prints one ``error: ...`` line naming the fix and
exits with status 1.
"""
import argparse
import os
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Evaluate an mmclip model')
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', help='mmclip checkpoint file')
    p.add_argument('--work-dir', help='where to save logs')
    p.add_argument('--out', help='dump per-sample predictions to a .json or '
                   '.pkl file')
    p.add_argument('--show-dir', help='save PNGs of images with their top-k '
                   'predicted classes to this folder')
    p.add_argument('--show-num', type=int, default=16,
                   help='images drawn per process with --show-dir')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config entries, e.g. '
                   'test_dataloader.batch_size=64')
    p.add_argument('--threads', default=None,
                   help="PyTorch CPU threads: a number, or 'auto' (default): "
                   'the cores other processes leave free, re-checked as '
                   'the run goes')
    p.add_argument('--log-level', default=None,
                   choices=['DEBUG', 'INFO', 'WARNING', 'ERROR'],
                   help='console messages (default WARNING: progress and '
                   "results; the work dir's log keeps everything); INFO "
                   "shows mmengine's log")
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'],
                   help='pytorch: processes started by torchrun '
                   '(tools/dist_test.sh); slurm: by srun '
                   '(tools/slurm_test.sh)')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def run(args) -> dict:
    """Evaluate as ``args`` say.

    Returns:
        dict: The metrics, e.g. ``{'accuracy/top1': ...}``.
    """
    from mmclip.apis.cli import runtime_options
    from mmclip.apis.test import prepare_test_config, test
    cfg = prepare_test_config(
        args.config, args.checkpoint, work_dir=args.work_dir, out=args.out,
        cfg_options=runtime_options(args), launcher=args.launcher)
    return test(cfg, show_dir=args.show_dir, max_show=args.show_num)


def main(argv=None) -> int:
    """Evaluate; a user error prints one ``error:`` line and returns 1."""
    args = parse_args(argv)
    # Imported after parsing: --help answers without loading torch.
    from mmclip.apis.cli import run_tool
    return run_tool(run, args)


if __name__ == '__main__':
    sys.exit(main())
