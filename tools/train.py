"""Train a model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher pytorch]

Multi-GPU: ``torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher
pytorch``.
"""
import argparse
import os

from mmengine.config import DictAction

from mmclip.apis.train import prepare_train_config, train


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
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config entries, e.g. '
                   'train_dataloader.batch_size=64')
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'])
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = prepare_train_config(
        args.config, work_dir=args.work_dir, resume=args.resume,
        amp=args.amp, amp_dtype=args.amp_dtype, cfg_options=args.cfg_options,
        launcher=args.launcher)
    return train(cfg)


if __name__ == '__main__':
    main()
