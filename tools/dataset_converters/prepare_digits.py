"""Write scikit-learn's handwritten digits as a tiny CLIP dataset.

Example::

    python tools/dataset_converters/prepare_digits.py data/digits --size 32

writes the 1797 8x8 images as upscaled RGB PNGs with ``train.csv``
(captions and labels), ``val.csv``, ``val_shifted.csv`` (the held-out
digits with pixel noise) and ``classnames.txt`` into ``data/digits``; the
same arguments again do nothing. See :func:`mmclip.datasets.digits.
prepare_digits`, which does the work.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write sklearn digits as PNGs + train/val CSVs.')
    parser.add_argument('out_dir', help='output folder (the data_root)')
    parser.add_argument('--size', type=int, default=32,
                        help='side length of the PNGs (default: 32)')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help='held-out fraction per class (default: 0.2)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of split and captions (default: 0)')
    parser.add_argument('--resample', choices=('bilinear', 'nearest'),
                        default='bilinear', help='upscaling (default: '
                        'bilinear)')
    return parser.parse_args(argv)


def run(args) -> dict:
    """Write the data as ``args`` say; returns its ``meta.json`` content."""
    from mmclip.datasets.digits import prepare_digits
    from mmclip.datasets.prepared_files import prepared_summary
    meta = prepare_digits(args.out_dir, size=args.size,
                          val_fraction=args.val_fraction, seed=args.seed,
                          resample=args.resample)
    print(prepared_summary(args.out_dir, meta))
    return meta


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool
    return run_tool(run, args)


if __name__ == '__main__':
    sys.exit(main())
