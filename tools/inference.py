"""Classify or embed images with an mmclip model.

    python tools/inference.py IMAGE_OR_FOLDER [...] --model NAME_OR_CONFIG
        [--checkpoint PATH] [--texts T [T ...]] [--templates NAME_OR_FILE]
        [--topk 5] [--show-dir DIR] [--batch-size 32] [--device cpu]
        [--save-features FILE.npy|FILE.npz] [--out results.json]
        [--cfg-options k=v ...]

Prints one row per image with its top-k classes and probabilities. The
classes are ``--texts`` when given (each a class name expanded by
``--templates``, or used verbatim), else the model's configured classes
(e.g. the ten digits of ``clip_vit-tiny-p8_zeroshot-cls_digits-32px``).
Every file of a folder argument is tried and unreadable ones are skipped with
a warning; an unreadable file named explicitly stops the tool.

Without ``--checkpoint`` the weights are random and the predictions
meaningless; convert released weights with
``tools/model_converters/clip_to_mmclip.py``.

Outputs: ``--show-dir`` one PNG per image (named after its file) with its
top-k bar chart; ``--save-features`` the L2-normalised image embeddings
(``.npy``: the ``(N, D)`` array; ``.npz``: ``image_embeds``, ``img_paths``
and, with ``--texts``, ``text_embeds`` and ``texts``); ``--out`` a JSON file
with every image's prediction and class probabilities.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

import numpy as np
from mmengine.config import DictAction

from mmclip.apis import (extract_features, get_model, inference_model,
                         load_image, model_classes)
from mmclip.apis.cli import run_tool
from mmclip.apis.preflight import check_checkpoint, check_config_file
from mmclip.visualization import save_prediction_panel, shorten_label

RANDOM_WEIGHTS = ('WARNING: no --checkpoint given, the model has random '
                  'weights: predictions are meaningless. Convert released '
                  'weights with tools/model_converters/clip_to_mmclip.py and '
                  'pass --checkpoint.')
_FEATURE_FORMATS = ('.npy', '.npz')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Classify or embed images with an mmclip model')
    p.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER',
                   help='image files and/or folders (every file in a folder '
                   'is tried)')
    p.add_argument('--model', required=True,
                   help='config name (e.g. clip_vit-base-p32_zeroshot-cls_'
                   'in1k), model name or config file path')
    p.add_argument('--checkpoint', help='mmclip checkpoint; without it the '
                   'weights are random')
    p.add_argument('--texts', nargs='+', metavar='T',
                   help='classify against these labels/captions instead of '
                   "the model's classes")
    p.add_argument('--templates', metavar='NAME_OR_FILE',
                   help="prompt templates for --texts, e.g. 'openai_imagenet' "
                   'or a file with one template with {} per line')
    p.add_argument('--topk', type=int, default=5, help='classes per image')
    p.add_argument('--show-dir', help='save one PNG per image with its top-k '
                   'classes to this folder')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda:0'")
    p.add_argument('--save-features', metavar='FILE',
                   help='write L2-normalised embeddings to a .npy or .npz')
    p.add_argument('--out', help='write the predictions to a .json file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config entries, e.g. '
                   'model.predict_head.cache_dir=None')
    return p.parse_args(argv)


def check_args(args) -> None:
    """Refuse bad arguments before the model is built (seconds to minutes).

    Raises:
        ValueError: Naming the argument and what to pass instead.
        MissingFileError: The ``--model`` config file or the checkpoint is
            missing.
    """
    if args.model.endswith('.py'):  # a file, not a model or config name
        check_config_file(args.model)
    check_checkpoint(args.checkpoint, '--checkpoint')
    for path in args.images:
        if not osp.exists(path):
            raise ValueError(f'No such image file or folder: {path!r}.')
    if args.templates is not None and not args.texts:
        raise ValueError('--templates expands --texts into prompts; pass '
                         '--texts too (class names such as "cat" "dog").')
    if args.topk < 1 or args.batch_size < 1:
        raise ValueError('--topk and --batch-size must be at least 1.')
    if args.save_features and osp.splitext(
            args.save_features)[1] not in _FEATURE_FORMATS:
        raise ValueError(f'--save-features must end in one of '
                         f'{_FEATURE_FORMATS}, got {args.save_features!r}.')
    if args.out and not args.out.endswith('.json'):
        raise ValueError(f'--out must end in .json, got {args.out!r}.')


def format_table(results: List[dict], classes: List[str], topk: int) -> str:
    """One line per image: its path, then ``label: probability`` for its
    top-k classes, best first. Labels are shortened to one line."""
    paths = [r.get('img_path', f'image {i}') for i, r in enumerate(results)]
    width = max(len('image'), *(len(p) for p in paths))
    k = min(topk, len(classes))
    lines = [f'{"image":<{width}}  top-{k} (label: probability)']
    for path, result in zip(paths, results):
        scores = result['pred_scores']
        top = np.argsort(-scores, kind='stable')[:k]
        cells = [f'{shorten_label(classes[i], 40, 1)}: {scores[i]:.3f}'
                 for i in top]
        lines.append(f'{path:<{width}}  ' + ' | '.join(cells))
    return '\n'.join(lines)


def _make_parent(path: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)


def _unique_png(folder: str, img_path: str, used: set) -> str:
    """``folder/{stem}.png``, with ``_1``, ``_2`` ... when two images share
    a file stem (``a.jpg`` and ``a.png``, or equal names in two folders)."""
    stem = osp.splitext(osp.basename(img_path))[0]
    name, n = stem, 0
    while name in used:
        n += 1
        name = f'{stem}_{n}'
    used.add(name)
    return osp.join(folder, name + '.png')


def save_pictures(results: List[dict], classes: List[str], show_dir: str,
                  topk: int, random_weights: bool) -> List[str]:
    """One :func:`save_prediction_panel` PNG per result, titled with the
    file name (and a random-weights notice); returns the PNG paths."""
    used, written = set(), []
    note = ' (random weights: meaningless)' if random_weights else ''
    for result in results:
        path = result['img_path']
        out = _unique_png(show_dir, path, used)
        written.append(save_prediction_panel(
            load_image(path), classes, result['pred_scores'], out,
            topk=topk, title=osp.basename(path) + note))
    return written


def save_features(model, results: List[dict], texts: Optional[List[str]],
                  out_file: str, batch_size: int) -> dict:
    """Embed the images that were classified (and ``texts``) and write them
    to ``out_file`` (see the module docstring for the layout)."""
    feats = extract_features(
        model, images=[r['img_path'] for r in results], texts=texts,
        batch_size=batch_size, normalize=True, to_numpy=True, progress=False)
    _make_parent(out_file)
    if out_file.endswith('.npy'):
        np.save(out_file, feats['image_embeds'])
    else:
        arrays = dict(image_embeds=feats['image_embeds'],
                      img_paths=np.array(feats['img_paths']))
        if texts:
            arrays.update(text_embeds=feats['text_embeds'],
                          texts=np.array(texts))
        np.savez(out_file, **arrays)
    return feats


def write_json(results: List[dict], classes: List[str], args) -> None:
    """Write ``args.out``: the model, checkpoint, classes and every image's
    prediction with its ``(C,)`` probabilities."""
    predictions = [
        dict(img_path=r['img_path'], pred_label=r['pred_label'],
             pred_class=r['pred_class'], pred_score=r['pred_score'],
             pred_scores=r['pred_scores'].tolist()) for r in results
    ]
    _make_parent(args.out)
    with open(args.out, 'w') as f:
        json.dump(dict(model=args.model, checkpoint=args.checkpoint,
                       random_weights=args.checkpoint is None,
                       classes=classes, predictions=predictions), f,
                  indent=1)


def run(args) -> List[dict]:
    """Classify ``args.images``, print the table, write the outputs.

    Returns:
        list[dict]: :func:`mmclip.apis.inference_model`'s results, one per
        readable image.
    """
    check_args(args)
    model = get_model(args.model, pretrained=args.checkpoint,
                      device=args.device, cfg_options=args.cfg_options)
    print(f'model: {args.model} on {args.device}')
    print(f'checkpoint: {args.checkpoint} (loaded)'
          if args.checkpoint else RANDOM_WEIGHTS)
    results = inference_model(model, args.images, texts=args.texts,
                              templates=args.templates,
                              batch_size=args.batch_size)
    if isinstance(results, dict):  # a single file was given
        results = [results]
    num_classes = len(results[0]['pred_scores'])
    classes = args.texts or model_classes(model) or [
        str(i) for i in range(num_classes)
    ]
    source = '--texts' if args.texts else 'the model'
    print(f'{len(results)} images, {num_classes} classes from {source}'
          + (f' with templates {args.templates!r}' if args.templates else '')
          + ':')
    print(format_table(results, classes, args.topk))
    if args.show_dir:
        save_pictures(results, classes, args.show_dir, args.topk,
                      random_weights=not args.checkpoint)
        print(f'pictures: {len(results)} PNGs in {args.show_dir}')
    if args.save_features:
        feats = save_features(model, results, args.texts,
                              args.save_features, args.batch_size)
        note = (' (text embeddings need a .npz)'
                if args.texts and args.save_features.endswith('.npy') else '')
        print(f'features: image_embeds {feats["image_embeds"].shape} -> '
              f'{args.save_features}{note}')
    if args.out:
        write_json(results, classes, args)
        print(f'predictions: {args.out}')
    if not args.checkpoint:
        print(RANDOM_WEIGHTS)
    return results


def main(argv=None) -> int:
    """Run the tool; a bad argument or unreadable image prints one error
    line to stderr and returns 1 (no traceback)."""
    return run_tool(run, parse_args(argv),
                    user_errors=(ValueError, FileNotFoundError))


if __name__ == '__main__':
    sys.exit(main())
