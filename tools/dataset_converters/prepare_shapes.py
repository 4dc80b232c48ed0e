"""Write coloured shapes with captions: a small image-caption set of
concepts the digits CLIP never saw.

Example::

    python tools/dataset_converters/prepare_shapes.py data/shapes

writes 6 shapes x 150 training images with captions (``train.csv``,
open_clip's ``filepath,title``), 6 x 40 held-out images with their shape
(``val.csv``), ``classnames.txt`` and ``templates.txt`` into
``data/shapes``; the same arguments again do nothing. See
:func:`mmclip.datasets.shapes.prepare_shapes`, which does the work.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write coloured shapes as PNGs + caption/label CSVs.')
    parser.add_argument('out_dir', help='output folder (the data_root)')
    parser.add_argument('--size', type=int, default=32,
                        help='side length of the PNGs (default: 32)')
    parser.add_argument('--num-train', type=int, default=150,
                        help='training images per shape (default: 150)')
    parser.add_argument('--num-val', type=int, default=40,
                        help='held-out images per shape (default: 40)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of drawings and captions (default: 0)')
    return parser.parse_args(argv)


def run(args) -> dict:
    """Write the data as ``args`` say; returns its ``meta.json`` content."""
    from mmclip.datasets.prepared_files import prepared_summary
    from mmclip.datasets.shapes import prepare_shapes
    meta = prepare_shapes(args.out_dir, size=args.size,
                          num_train=args.num_train, num_val=args.num_val,
                          seed=args.seed)
    print(prepared_summary(args.out_dir, meta))
    return meta


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool
    return run_tool(run, args)


if __name__ == '__main__':
    sys.exit(main())
