"""WiSE-FT: interpolate a zero-shot and a fine-tuned CLIP model or
classifier.

    theta(alpha) = (1 - alpha) * theta_zero_shot + alpha * theta_fine_tuned

One checkpoint::

    python tools/model_converters/wise_ft.py ZERO_SHOT FINE_TUNED OUT.pth \\
        [--alpha 0.5] [--config FT_CONFIG] [--cfg-options k=v ...]

A sweep, evaluated on the config's test data (an accuracy table on stdout,
the curve as OUT.png, the numbers as OUT.json)::

    python tools/model_converters/wise_ft.py ZERO_SHOT FINE_TUNED OUT.png \\
        --config FT_CONFIG --alphas 0 0.25 0.5 0.75 1

FINE_TUNED is the fine-tuning run's checkpoint (with EMA, its averaged
weights). After a caption fine-tune (a CLIP model) ZERO_SHOT is the CLIP
checkpoint the run started from: both towers and the temperature are
interpolated, no --config needed but for a sweep (the caption fine-tune
config, scored zero-shot). After a classifier fine-tune ZERO_SHOT is the
zero-shot classifier the run started from or, more simply, the CLIP
checkpoint it started from: with --config (the fine-tune config) its
ZeroShotInit rebuilds that classifier (same class names and templates).
See mmclip.apis.wise_ft.
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
    parser.add_argument('zero_shot', help='the CLIP checkpoint the '
                        'fine-tuning started from (for a classifier '
                        'fine-tune: with --config), or the zero-shot '
                        'classifier')
    parser.add_argument('fine_tuned', help='fine-tuned CLIP or classifier '
                        'checkpoint')
    parser.add_argument('out', help='output .pth (--alpha) or .png curve '
                        '(--alphas; the numbers go to the .json beside it)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--alpha', type=float, default=0.5,
                      help='0: zero-shot, 1: fine-tuned (default 0.5)')
    mode.add_argument('--alphas', type=float, nargs='+',
                      help='evaluate these alphas on the test data of '
                      '--config instead of writing a checkpoint')
    parser.add_argument('--config', help='the fine-tune config (a caption '
                        'fine-tune needs it for --alphas only)')
    parser.add_argument('--work-dir', help='logs of the sweep (default '
                        'work_dirs/wise_ft)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override entries of --config, e.g. '
                        'test_dataloader.dataset.data_root=data/shifted or '
                        'model.init_cfg.templates=my_templates.txt')
    return parser.parse_args(argv)


def format_table(results, keys) -> str:
    """The sweep as a text table, one row per alpha."""
    rows = [['alpha'] + list(keys)]
    rows += [[f'{r["alpha"]:.2f}'] + [f'{r[k]:.2f}' for k in keys]
             for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(cell.rjust(w) for cell, w in zip(row, widths))
                     for row in rows)


def run(args) -> None:
    """Write the WiSE-FT checkpoint, or evaluate the sweep and write its
    curve and numbers, as ``args`` say."""
    from mmclip.apis.wise_ft import evaluate_wise_ft, plot_wise_ft, wise_ft
    if args.alphas is None:
        if args.out.endswith('.png'):
            raise ValueError('OUT is the .pth to write; a .png curve '
                             'needs --alphas and --config.')
        wise_ft(args.zero_shot, args.fine_tuned, args.out, alpha=args.alpha,
                config=args.config, cfg_options=args.cfg_options)
        print(f'Wrote WiSE-FT alpha={args.alpha} to {args.out}')
        return
    if args.config is None or not args.out.endswith('.png'):
        raise ValueError('--alphas evaluates on the test data of '
                         '--config and writes OUT as a .png curve.')
    results = evaluate_wise_ft(
        args.config, args.zero_shot, args.fine_tuned, args.alphas,
        work_dir=args.work_dir, cfg_options=args.cfg_options)
    keys = [k for k in results[0] if k != 'alpha']
    print(format_table(results, keys))
    plot_wise_ft(results, args.out)
    with open(osp.splitext(args.out)[0] + '.json', 'w') as f:
        json.dump(results, f, indent=2)
    print(f'Wrote {args.out}')


def main(argv=None) -> int:
    """Run the tool; returns the exit status (0 ok, 1 refused)."""
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool
    from mmclip.apis.wise_ft import CheckpointMismatchError
    return run_tool(run, args, user_errors=(
        CheckpointMismatchError, ValueError, FileNotFoundError))


if __name__ == '__main__':
    sys.exit(main())
