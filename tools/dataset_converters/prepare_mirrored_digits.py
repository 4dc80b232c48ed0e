"""Write the mirrored-digits task: a small labelled set of 16 classes, the
ten digits and six of them mirrored, for checking fine-tuning recipes where
the digits CLIP's zero-shot head is weak.

Example::

    python tools/dataset_converters/prepare_mirrored_digits.py \\
        data/mirrored_digits

writes 60 training and 28 held-out 32x32 PNGs per class with ``train.csv``,
``val.csv`` (``filepath,label``) and ``classnames.txt`` into
``data/mirrored_digits``; the same arguments again do nothing. See
:func:`mmclip.datasets.mirrored_digits.prepare_mirrored_digits`, which does
the work.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the 16-class mirrored-digits task as PNGs + '
        'train/val CSVs.')
    parser.add_argument('out_dir', help='output folder (the data_root)')
    parser.add_argument('--size', type=int, default=32,
                        help='side length of the PNGs (default: 32)')
    parser.add_argument('--train-per-class', type=int, default=60,
                        help='training images per class (default: 60)')
    parser.add_argument('--val-per-class', type=int, default=28,
                        help='held-out images per class (default: 28)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the split (default: 0)')
    return parser.parse_args(argv)


def run(args) -> dict:
    """Write the data as ``args`` say; returns its ``meta.json`` content."""
    from mmclip.datasets.mirrored_digits import prepare_mirrored_digits
    from mmclip.datasets.prepared_files import prepared_summary
    meta = prepare_mirrored_digits(
        args.out_dir, size=args.size, train_per_class=args.train_per_class,
        val_per_class=args.val_per_class, seed=args.seed)
    print(prepared_summary(args.out_dir, meta, ' of 16 classes'))
    return meta


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool
    return run_tool(run, args)


if __name__ == '__main__':
    sys.exit(main())
