"""Linear-probe evaluation of a CLIP checkpoint (CLIP paper protocol).

Usage::

    python tools/analysis_tools/linear_probe.py CONFIG CHECKPOINT \\
        [--train-split train_dataloader] [--test-split test_dataloader] \\
        [--normalize] [--cs 0.01 0.1 1] [--out result.json]

The two splits are dataloader entries of the config (``train_dataloader``,
``val_dataloader`` or ``test_dataloader``) whose datasets give images with
``gt_label`` (e.g. mmpretrain's ``ImageNet`` / ``CustomDataset`` or
mmclip's ``ClassificationTextDataset``). Both are rebuilt with the *test*
pipeline of ``--test-split`` (no augmentation, as in the paper), without
shuffling or dropping samples. Image embeddings of the frozen model are
extracted once; ``C`` is chosen on ``--val-fraction`` of the training split
by the paper's binary search (or over ``--cs``), the probe is refit on the
whole training split and its top-1 accuracy on the test split is reported.
"""
import argparse
import copy
import json

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
    parser.add_argument('--n-threads', type=int, default=None,
                        help='BLAS threads per fit (default: library '
                        'default)')
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--num-workers', type=int, default=None)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=None, help='write results as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def build_loader(cfg: Config, key: str, pipeline, args):
    """Dataloader of ``cfg[key]`` with ``pipeline``, in order, no drops."""
    from mmengine.runner import Runner
    if key not in cfg or cfg[key] is None:
        raise KeyError(f'The config has no {key!r}.')
    loader = copy.deepcopy(cfg[key])
    loader.dataset.pipeline = copy.deepcopy(pipeline)
    loader.sampler = dict(type='DefaultSampler', shuffle=False)
    loader.pop('batch_sampler', None)
    loader.drop_last = False
    loader.persistent_workers = False
    if args.batch_size:
        loader.batch_size = args.batch_size
    if args.num_workers is not None:
        loader.num_workers = args.num_workers
    return Runner.build_dataloader(loader, seed=args.seed)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmclip.apis import get_model
    from mmclip.evaluation import extract_features, linear_probe

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = get_model(cfg, pretrained=args.checkpoint, device=args.device)
    pipeline = cfg[args.test_split].dataset.pipeline
    feats = {}
    for split in (args.train_split, args.test_split):
        loader = build_loader(cfg, split, pipeline, args)
        feats[split] = extract_features(
            model, loader, normalize=args.normalize)
        print(f'{split}: {feats[split][0].shape[0]} samples, '
              f'{feats[split][0].shape[1]}-d features')
    res = linear_probe(
        *feats[args.train_split], *feats[args.test_split],
        val_fraction=args.val_fraction, Cs=args.cs, max_iter=args.max_iter,
        seed=args.seed, n_threads=args.n_threads)
    res.pop('classifier')
    print(f"linear probe top-1: {res['top1']:.2f}%  (C={res['C']:.4g}, "
          f"val top-1 {res['val_top1']:.2f}%)")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    main()
