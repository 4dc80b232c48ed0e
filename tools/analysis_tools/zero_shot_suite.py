"""Zero-shot classification of one checkpoint on a suite of datasets, with
clip_benchmark's dataset names, metrics and result files.

Usage::

    python tools/analysis_tools/zero_shot_suite.py MODEL_OR_CONFIG \\
        [--checkpoint CKPT] [--datasets imagenet1k,imagenet_robustness] \\
        [--data-root data] [--out work_dirs/zero_shot_suite]

Every dataset (or collection: ``imagenet_robustness``, ``vtab``) found
under ``--data-root`` is evaluated: clip_benchmark's webdataset export
``wds_<name>/`` first, else the dataset's usual download (ImageNet-style
class folders, torchvision's CIFAR files); nothing is downloaded, and the
datasets not found are listed with where to put them. Per dataset, the
JSON ``clip_benchmark eval`` writes goes to ``--out``, with the image
features (``<name>_features.npy``, reused by the next run of the same
model and data: other templates re-score without encoding again); then one
CSV of them all (``benchmark.csv``, ``clip_benchmark build``'s columns) and
a markdown table on stdout.

Several processes (GPUs, or CPU processes with gloo), as
``tools/dist_test.sh``: ``tools/dist_run.sh analysis_tools/zero_shot_suite.py
N MODEL_OR_CONFIG [options]`` (torchrun with ``--launcher pytorch``); each
process encodes its share of the images, rank 0 writes the results.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Zero-shot classification on a suite of datasets '
        "(clip_benchmark's names, metrics and files)")
    parser.add_argument('model', help='model name or config file')
    parser.add_argument('--checkpoint', default=None,
                        help='mmclip checkpoint (default: random weights)')
    parser.add_argument('--datasets', default='imagenet1k',
                        help='comma-separated dataset and collection names, '
                        'e.g. imagenet1k,imagenet_robustness,cifar100')
    parser.add_argument('--data-root', default='data',
                        help='folder holding the datasets')
    parser.add_argument('--out', default='work_dirs/zero_shot_suite',
                        help='folder of the result files')
    parser.add_argument('--classnames', nargs='+', default=None,
                        metavar='[DATASET=]SPEC',
                        help='class names instead of the dataset\'s: a .txt '
                        'file (one per line) or a registered set, for '
                        'DATASET or every dataset')
    parser.add_argument('--templates', nargs='+', default=None,
                        metavar='[DATASET=]SPEC',
                        help='prompt templates instead of the dataset\'s, '
                        'as --classnames')
    parser.add_argument('--cache-dir', default=None,
                        help='zero-shot classifier cache (default: '
                        '~/.cache/mmclip/zero_shot)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=4,
                        help='image-decoding threads')
    parser.add_argument('--device', default='cpu',
                        help="'cuda' gives each torchrun process its own "
                        'GPU (LOCAL_RANK)')
    parser.add_argument('--launcher', choices=['none', 'pytorch'],
                        default='none',
                        help='pytorch: one of torchrun\'s processes '
                        '(tools/dist_run.sh sets it)')
    return parser.parse_args(argv)


def join_processes(device: str) -> str:
    """Join torchrun's process group: NCCL with one GPU per process for a
    CUDA ``device``, else gloo on CPU. Returns this process's device."""
    import os

    import torch
    import torch.distributed as dist

    from mmclip.apis.launch import check_launcher_env
    check_launcher_env(
        'pytorch', how='start the processes with tools/dist_run.sh '
        'analysis_tools/zero_shot_suite.py N MODEL [options]')
    if device.startswith('cuda'):
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
        torch.cuda.set_device(local_rank)
        dist.init_process_group('nccl')
        return f'cuda:{local_rank}'
    dist.init_process_group('gloo')
    return device


def _per_dataset(items) -> dict:
    """``['cifar100=a.txt', 'b.txt']`` -> ``{'cifar100': 'a.txt', '*':
    'b.txt'}``."""
    specs = {}
    for item in items or ():
        name, sep, spec = item.partition('=')
        specs[name if sep else '*'] = spec if sep else item
    return specs


def run(args):
    """Evaluate as ``args`` say; print the table and the missing datasets.

    Returns:
        SuiteReport: See :func:`mmclip.evaluation.zero_shot_suite.
        evaluate_suite`.
    """
    from mmclip.apis import get_model
    from mmclip.apis.preflight import check_checkpoint
    from mmclip.apis.preprocess import build_eval_transform, collate_images
    from mmclip.errors import MissingFileError
    from mmclip.evaluation.zero_shot_suite import (evaluate_suite,
                                                   resolve_datasets)
    from mmclip.zero_shot_cache import DEFAULT_CACHE_DIR

    datasets = resolve_datasets(args.datasets.split(','))
    if args.checkpoint:
        check_checkpoint(args.checkpoint, '--checkpoint')
    if not osp.isdir(args.data_root):
        raise MissingFileError(
            f'--data-root {args.data_root} is not a folder; pass the folder '
            'that holds the datasets.')
    from mmengine.dist import is_main_process
    device = (join_processes(args.device)
              if args.launcher == 'pytorch' else args.device)
    model = get_model(args.model, pretrained=args.checkpoint, device=device)

    def encode(packed):
        return model.encode_image(collate_images(model, packed))

    report = evaluate_suite(
        model, datasets, args.data_root, args.out,
        transform=build_eval_transform(model), encode=encode,
        model_name=osp.splitext(osp.basename(args.model))[0],
        pretrained=(osp.basename(args.checkpoint)
                    if args.checkpoint else 'random'),
        overrides=dict(classnames=_per_dataset(args.classnames),
                       templates=_per_dataset(args.templates)),
        cache_dir=args.cache_dir or DEFAULT_CACHE_DIR,
        batch_size=args.batch_size, num_workers=args.num_workers)
    if not is_main_process():
        return report
    for name, skipped in report.skipped.items():
        if skipped:
            print(f'warning: {name}: skipped {len(skipped)} unreadable '
                  f'sample(s): {"; ".join(skipped[:5])}', file=sys.stderr)
    if report.records:
        print(report.table())
        print(f'\nResults in {args.out} (one JSON per dataset, '
              'benchmark.csv)')
    if report.missing:
        print(f'\nNot under {args.data_root} (nothing is downloaded):')
        for spec in report.missing:
            print(f'- {spec.name}: {spec.where()}')
    if not report.records:
        raise MissingFileError(
            f'None of the datasets is under {args.data_root}; put them '
            'where the list above says.')
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool  # after parsing: --help is fast
    return run_tool(run, args)


if __name__ == '__main__':
    sys.exit(main())
