"""Linear-probe evaluation of a CLIP checkpoint (CLIP paper protocol).

Usage::

    python tools/analysis_tools/linear_probe.py CONFIG CHECKPOINT \\
        [--train-split train_dataloader] [--test-split test_dataloader] \\
        [--normalize] [--cs 0.01 0.1 1] [--out result.json]

For example, the tiny digits CLIP of
``configs/clip/clip_vit-tiny-p8_1xb32-24e_digits-32px.py``, probed on the
labelled digits splits of its fine-tune config::

    python tools/analysis_tools/linear_probe.py \\
        configs/clip/clip_vit-tiny-p8_ft-1xb64-10e_digits-32px.py \\
        work_dirs/clip_vit-tiny-p8_1xb32-24e_digits-32px/epoch_24.pth

CONFIG gives the model's image tower and the data: a ``CLIPModel`` config
or an ``ImageClassifier`` one (fine-tune / linear-probe configs); only the
image tower (``backbone.*``) of CHECKPOINT is loaded, so a CLIP checkpoint,
a fine-tuned classifier or a WiSE-FT output all work. The two splits are
dataloader entries of the config (``train_dataloader``, ``val_dataloader``
or ``test_dataloader``) whose datasets give images with ``gt_label`` (e.g.
mmclip's ``CsvClassificationDataset``, mmpretrain's ``ImageNet`` /
``CustomDataset`` or ``ClassificationTextDataset``); a split without labels
(e.g. image-caption pretraining data) is refused before any work with one
``error: ...`` line naming the fix, exit status 1. Both are rebuilt with
the *test* pipeline of ``--test-split`` (no augmentation, as in the paper),
without shuffling or dropping samples. Image embeddings of the frozen model
are extracted once; ``C`` is chosen on ``--val-fraction`` of the training
split by the paper's binary search (or over ``--cs``), the probe is refit on
the whole training split and its top-1 accuracy on the test split is
reported.
"""
import argparse
import json
import sys

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Linear probe of frozen CLIP image features')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='mmclip checkpoint')
    parser.add_argument('--train-split', default='train_dataloader',
                        help='config key of the dataloader to fit on')
    parser.add_argument('--test-split', default='test_dataloader',
                        help='config key of the dataloader to score on; its '
                        'pipeline is used for both splits')
    parser.add_argument('--normalize', action='store_true',
                        help='L2-normalise the features (default: raw '
                        'projected embeddings, as OpenAI\'s example)')
    parser.add_argument('--val-fraction', type=float, default=0.2)
    parser.add_argument('--cs', type=float, nargs='+', default=None,
                        help='explicit C grid (default: binary search over '
                        '[1e-6, 1e6])')
    parser.add_argument('--max-iter', type=int, default=1000)
    parser.add_argument('--n-threads', type=int, default=1,
                        help='BLAS threads per fit (default: 1, fastest for '
                        'the many small fits of the C search up to ~10k '
                        'samples; raise it for large splits)')
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--num-workers', type=int, default=None)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=None, help='write results as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def run(args) -> dict:
    """Probe as ``args`` say.

    Returns:
        dict: ``top1`` (test accuracy, %), ``C``, ``val_top1``, ``sweep``,
        ``num_samples`` and ``feature_dim`` (see
        :func:`mmclip.evaluation.probe_dataloaders`).
    """
    from mmengine.registry import init_default_scope

    from mmclip.apis import get_model
    from mmclip.apis.preflight import (check_checkpoint, check_config_file,
                                       check_data_files)
    from mmclip.evaluation import (LinearProbeInputError,
                                   build_probe_dataloader, check_labelled,
                                   load_image_tower, probe_dataloaders)

    check_config_file(args.config)
    check_checkpoint(args.checkpoint, 'CHECKPOINT')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmclip'))
    splits = (args.train_split, args.test_split)
    present = [split for split in splits if cfg.get(split) is not None]
    check_data_files(cfg, present)
    # Every split is checked for labels before the model is loaded, and
    # before a missing split is named: a caption (pretraining) config is
    # the wrong kind of config whichever dataloaders it has. Both splits
    # are read with the test split's pipeline (present[-1] when it exists).
    loaders = {}
    for split in present:
        loaders[split] = build_probe_dataloader(
            cfg[split], cfg[present[-1]].dataset.pipeline,
            batch_size=args.batch_size, num_workers=args.num_workers,
            seed=args.seed)
        check_labelled(loaders[split].dataset, f'{split} of {args.config}')
    missing = [split for split in splits if split not in present]
    if missing:
        raise LinearProbeInputError(
            f'{args.config} has no {missing[0]}: pass --train-split / '
            '--test-split as one of its dataloaders (train_dataloader, '
            'val_dataloader, test_dataloader).')
    model = get_model(cfg, device=args.device)
    load_image_tower(model, args.checkpoint)
    res = probe_dataloaders(
        model, loaders[args.train_split],
        {args.test_split: loaders[args.test_split]},
        normalize=args.normalize, val_fraction=args.val_fraction, Cs=args.cs,
        max_iter=args.max_iter, seed=args.seed, n_threads=args.n_threads)
    res['top1'] = res['top1'][args.test_split]
    print(f"{args.train_split}: {res['num_samples']['train']} samples, "
          f"{args.test_split}: {res['num_samples'][args.test_split]}, "
          f"{res['feature_dim']}-d features")
    print(f"linear probe top-1: {res['top1']:.2f}%  (C={res['C']:.4g}, "
          f"val top-1 {res['val_top1']:.2f}%)")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)
    return res


def main(argv=None) -> int:
    """Probe; an unusable split or checkpoint prints one ``error:`` line
    and returns 1."""
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool
    from mmclip.evaluation import LinearProbeInputError
    return run_tool(run, args,
                    user_errors=(LinearProbeInputError, FileNotFoundError))


if __name__ == '__main__':
    sys.exit(main())
