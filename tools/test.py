"""Evaluate a checkpoint with a config (e.g. zero-shot classification).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--out preds.json|preds.pkl] [--show-dir DIR]
        [--cfg-options k=v ...] [--launcher pytorch]

CHECKPOINT is an mmclip checkpoint (converted with
``tools/model_converters/clip_to_mmclip.py`` or written by training); it is
loaded with ``weights_only=True``. Multi-GPU: ``torchrun --nproc_per_node 8
tools/test.py CONFIG CHECKPOINT --launcher pytorch``.
"""
import argparse
import os

from mmengine.config import DictAction

from mmclip.apis.test import prepare_test_config, test


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
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'])
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = prepare_test_config(
        args.config, args.checkpoint, work_dir=args.work_dir, out=args.out,
        cfg_options=args.cfg_options, launcher=args.launcher)
    return test(cfg, show_dir=args.show_dir, max_show=args.show_num)


if __name__ == '__main__':
    main()
