"""WiSE-FT: interpolate a zero-shot and a fine-tuned CLIP classifier.

    theta(alpha) = (1 - alpha) * theta_zero_shot + alpha * theta_fine_tuned

One checkpoint::

    python tools/model_converters/wise_ft.py ZERO_SHOT FINE_TUNED OUT.pth \\
        [--alpha 0.5] [--config FT_CONFIG]

A sweep, evaluated on the config's test data (an accuracy table on stdout,
the curve as OUT.png, the numbers as OUT.json)::

    python tools/model_converters/wise_ft.py ZERO_SHOT FINE_TUNED OUT.png \\
        --config FT_CONFIG --alphas 0 0.25 0.5 0.75 1

FINE_TUNED is the fine-tuning run's checkpoint (with EMA, its averaged
weights). ZERO_SHOT is either the zero-shot classifier the run started from
or, more simply, the CLIP checkpoint it started from: with --config (the
fine-tune config) its ZeroShotInit rebuilds that classifier (same class
names and templates). See mmclip.apis.wise_ft.
"""
import argparse
import json
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('zero_shot', help='zero-shot classifier checkpoint, '
                        'or the CLIP checkpoint (needs --config)')
    parser.add_argument('fine_tuned', help='fine-tuned classifier checkpoint')
    parser.add_argument('out', help='output .pth (--alpha) or .png curve '
                        '(--alphas; the numbers go to the .json beside it)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--alpha', type=float, default=0.5,
                      help='0: zero-shot, 1: fine-tuned (default 0.5)')
    mode.add_argument('--alphas', type=float, nargs='+',
                      help='evaluate these alphas on the test data of '
                      '--config instead of writing a checkpoint')
    parser.add_argument('--config', help='the fine-tune config')
    parser.add_argument('--work-dir', help='logs of the sweep (default '
                        'work_dirs/wise_ft)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. '
                        'test_dataloader.dataset.data_root=data/shifted')
    return parser.parse_args(argv)


def format_table(results, keys) -> str:
    """The sweep as a text table, one row per alpha."""
    rows = [['alpha'] + list(keys)]
    rows += [[f'{r["alpha"]:.2f}'] + [f'{r[k]:.2f}' for k in keys]
             for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(cell.rjust(w) for cell, w in zip(row, widths))
                     for row in rows)


def main(argv=None) -> int:
    """Run the tool; returns the exit status (0 ok, 1 refused)."""
    args = parse_args(argv)
    from mmclip.apis.wise_ft import (CheckpointMismatchError, evaluate_wise_ft,
                                     plot_wise_ft, wise_ft)
    try:
        if args.alphas is None:
            if args.out.endswith('.png'):
                raise ValueError('OUT is the .pth to write; a .png curve '
                                 'needs --alphas and --config.')
            wise_ft(args.zero_shot, args.fine_tuned, args.out,
                    alpha=args.alpha, config=args.config)
            print(f'Wrote WiSE-FT alpha={args.alpha} to {args.out}')
            return 0
        if args.config is None or not args.out.endswith('.png'):
            raise ValueError('--alphas evaluates on the test data of '
                             '--config and writes OUT as a .png curve.')
        results = evaluate_wise_ft(
            args.config, args.zero_shot, args.fine_tuned, args.alphas,
            work_dir=args.work_dir, cfg_options=args.cfg_options)
    except (CheckpointMismatchError, ValueError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    keys = [k for k in results[0] if k != 'alpha']
    print(format_table(results, keys))
    plot_wise_ft(results, args.out)
    with open(osp.splitext(args.out)[0] + '.json', 'w') as f:
        json.dump(results, f, indent=2)
    print(f'Wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
