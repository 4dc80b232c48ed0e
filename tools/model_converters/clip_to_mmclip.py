"""Convert a CLIP checkpoint (OpenAI, open_clip, transformers, mmpretrain) to
mmclip's layout.

Example::

    python tools/model_converters/clip_to_mmclip.py ViT-B-32.pt \\
        checkpoints/clip-vit-b32_openai.pth
    python tools/model_converters/clip_to_mmclip.py \\
        open_clip_pytorch_model.bin vit-b32_laion2b.pth --act gelu

A transformers CLIPForImageClassification folder becomes an mmpretrain
ImageClassifier: DST and its config beside it (DST with .py), which
tools/test.py, mmclip.apis.get_model and fine-tuning configs use.
"""
import argparse
import json
import sys

from mmclip.apis.cli import run_tool
from mmclip.converters import (FORMATS, ConversionError,
                               classifier_config_path, convert_file,
                               describe_formats)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Recognised layouts:\n' + describe_formats())
    parser.add_argument('src', help='source checkpoint file or folder')
    parser.add_argument('dst', help='output .pth file')
    parser.add_argument(
        '--format',
        default='auto',
        choices=('auto', ) + FORMATS,
        help='source layout (default: detect from the keys)')
    parser.add_argument(
        '--act',
        choices=('quick_gelu', 'gelu'),
        help='MLP activation; required knowledge for plain open_clip state '
        'dicts (OpenAI weights: quick_gelu, most LAION weights: gelu)')
    parser.add_argument('--vision-heads', type=int, help='image tower heads')
    parser.add_argument('--text-heads', type=int, help='text tower heads')
    return parser.parse_args(argv)


def run(args) -> dict:
    """Convert as ``args`` say; returns the conversion's meta (see
    :func:`mmclip.converters.convert_file`)."""
    meta = convert_file(
        args.src,
        args.dst,
        fmt=args.format,
        act=args.act,
        vision_heads=args.vision_heads,
        text_heads=args.text_heads)
    summary = {
        k: meta[k]
        for k in ('source_format', 'act_cfg', 'act_certain', 'towers')
    }
    summary['model_cfg'] = meta['model_cfg']
    print(json.dumps(summary, indent=2))
    for note in meta['notes']:
        print(f'note: {note}')
    print(f'Saved {args.dst}')
    if 'preprocess' in meta:
        print(f'Saved its config {classifier_config_path(args.dst)}')
    return meta


def main(argv=None) -> int:
    """Run the converter; returns the exit status (0 ok, 1 refused)."""
    return run_tool(run, parse_args(argv),
                    user_errors=(ConversionError, FileNotFoundError))


if __name__ == '__main__':
    sys.exit(main())
