"""Train a model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch]

Several processes (GPUs, or CPU processes with gloo where there is no GPU):
``tools/dist_train.sh CONFIG N`` (torchrun; ``NNODES``, ``NODE_RANK``,
``MASTER_ADDR`` and ``PORT`` for several machines), on Slurm
``tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR``; see
``docs/training.md``. A missing config, data folder or checkpoint, or a
setting that cannot work, prints one ``error: ...`` line naming the fix and
exits with status 1.
"""
import argparse
import os
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train an mmclip model')
    p.add_argument('config', help='train config file path')
    p.add_argument('--work-dir', help='where to save logs and checkpoints')
    p.add_argument(
        '--resume', nargs='?', const='auto', default=None,
        help='resume from CKPT, or from the latest checkpoint in the work '
        'dir when no CKPT is given')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision (bfloat16 autocast)')
    p.add_argument('--amp-dtype', default='bfloat16',
                   choices=['bfloat16', 'float16'])
    p.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate linearly with the global batch size '
        '(processes x batch size) over the auto_scale_lr.base_batch_size '
        'of the config')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config entries, e.g. '
                   'train_dataloader.batch_size=64')
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
                   '(tools/dist_train.sh); slurm: by srun '
                   '(tools/slurm_train.sh)')
    # torch.distributed.launch (used by `mim train --launcher pytorch`)
    # passes --local-rank; torchrun sets LOCAL_RANK instead.
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def run(args):
    """Train as ``args`` say.

    Returns:
        mmengine.runner.Runner: The runner after training.
    """
    from mmclip.apis.cli import runtime_options
    from mmclip.apis.train import prepare_train_config, train
    cfg = prepare_train_config(
        args.config, work_dir=args.work_dir, resume=args.resume,
        amp=args.amp, amp_dtype=args.amp_dtype,
        cfg_options=runtime_options(args),
        launcher=args.launcher, auto_scale_lr=args.auto_scale_lr)
    return train(cfg)


def main(argv=None) -> int:
    """Train; a user error prints one ``error:`` line and returns 1."""
    args = parse_args(argv)
    # Imported after parsing: --help answers without loading torch.
    from mmclip.apis.cli import run_tool
    return run_tool(run, args)


if __name__ == '__main__':
    sys.exit(main())
