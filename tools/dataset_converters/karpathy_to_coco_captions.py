"""Write one split of Karpathy's caption file in the COCO captions layout
that mmclip's retrieval configs and the zero-shot suite read.

Example::

    python tools/dataset_converters/karpathy_to_coco_captions.py \\
        data/coco/dataset_coco.json \\
        data/coco/annotations/coco_karpathy_test_captions.json

reads Karpathy's ``dataset_coco.json`` (or ``dataset_flickr30k.json``) and
writes the images of ``--split`` (default ``test``) with their sentences'
raw text (:func:`mmclip.datasets.coco_caption.karpathy_to_coco_captions`).
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Karpathy's caption split -> COCO captions JSON.")
    parser.add_argument('karpathy', help="Karpathy's dataset_<name>.json")
    parser.add_argument('out', help='the COCO captions JSON to write')
    parser.add_argument('--split', default='test',
                        choices=['train', 'val', 'test', 'restval'])
    return parser.parse_args(argv)


def run(args) -> dict:
    """Convert as ``args`` say; returns the written content."""
    import json
    import os
    import os.path as osp

    from mmclip.datasets.coco_caption import karpathy_to_coco_captions
    from mmclip.errors import ConfigError, MissingFileError
    if not osp.isfile(args.karpathy):
        raise MissingFileError(
            f'{args.karpathy} does not exist; pass Karpathy\'s '
            'dataset_coco.json or dataset_flickr30k.json.')
    with open(args.karpathy, encoding='utf-8') as f:
        karpathy = json.load(f)
    try:
        coco = karpathy_to_coco_captions(karpathy, args.split)
    except ValueError as err:
        raise ConfigError(f'{args.karpathy}: {err}') from None
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(coco, f)
    print(f'{args.out}: {len(coco["images"])} images, '
          f'{len(coco["annotations"])} captions ({args.split}).')
    return coco


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool
    return run_tool(run, args)


if __name__ == '__main__':
    sys.exit(main())
