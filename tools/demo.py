"""mmclip end to end on bundled real data (``make demo``).

    python tools/demo.py [--model clip_vit-base-p32] [--checkpoint PATH]
                         [--skip-digits] [--skip-fine-tune] [--threads N]
                         [--work-dir work_dirs/digits_demo]

1. Zero-shot scores scikit-image's photo of a cat with CLIP ViT-B/32 against
   a few prompts. Without ``--checkpoint`` the weights are random (nothing can
   be downloaded here), which the output says plainly.
2. Pretrains a tiny CLIP from scratch on scikit-learn's handwritten digits
   (written once as PNGs + captions) and prints its zero-shot accuracy on
   held-out digits with prompts the training captions never contained,
   then runs ``tools/inference.py`` with the run's checkpoint on a few of
   them (a table and one PNG per digit in ``WORK_DIR/predictions``).
3. Makes that CLIP a 10-class digit classifier five ways and prints one
   table of their accuracies on the held-out digits and on a noisy copy of
   them (``val_shifted.csv``): zero-shot (the head built from the class
   names), a linear probe of the frozen image tower, a full fine-tune
   (``configs/clip/clip_vit-tiny-p8_ft-1xb64-10e_digits-32px.py``, its head
   started as the zero-shot one, in ``WORK_DIR/fine_tune``), WiSE-FT
   alpha=0.5, the average of the zero-shot and fine-tuned weights
   (``tools/model_converters/wise_ft.py``), and FLYP, both towers trained
   with the contrastive loss on captions made of the class names
   (``configs/clip/flyp_vit-tiny-p8_1xb32-10e_digits-32px.py``, in
   ``WORK_DIR/flyp``) and scored with their zero-shot head: what
   fine-tuning gains on the training distribution and loses off it, and
   what weight averaging and the pretraining loss keep.
"""
import argparse
import csv
import os.path as osp
import sys

import torch
from mmengine.runner import find_latest_checkpoint

from mmclip.apis import get_model, inference_model

TOOLS_DIR = osp.dirname(osp.abspath(__file__))
DIGITS_CONFIG = osp.join(
    osp.dirname(TOOLS_DIR), 'configs', 'clip',
    'clip_vit-tiny-p8_1xb32-24e_digits-32px.py')
FINE_TUNE_CONFIG = osp.join(
    osp.dirname(TOOLS_DIR), 'configs', 'clip',
    'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px.py')
FLYP_CONFIG = osp.join(
    osp.dirname(TOOLS_DIR), 'configs', 'clip',
    'flyp_vit-tiny-p8_1xb32-10e_digits-32px.py')
#: Test sets of the fine-tuning table: column name -> annotation file.
DIGITS_TEST_SETS = {'held-out': 'val.csv', 'noisy': 'val_shifted.csv'}
PROMPTS = [
    'a photo of a cat', 'a photo of a dog', 'a photo of an astronaut',
    'a photo of a rocket', 'a photo of a cup of coffee'
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='clip_vit-base-p32')
    parser.add_argument('--checkpoint', default=None,
                        help='mmclip checkpoint (convert OpenAI/open_clip/HF '
                        'weights with '
                        'tools/model_converters/clip_to_mmclip.py)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', default='auto',
                        help="PyTorch CPU threads of the training runs: a "
                        "number for the same table on every run of one "
                        "machine, or 'auto' (default): fitted to the load")
    parser.add_argument('--skip-digits', action='store_true',
                        help='only run the photo part')
    parser.add_argument('--skip-fine-tune', action='store_true',
                        help='pretrain the digits CLIP but do not make '
                        'classifiers of it')
    parser.add_argument('--digits-config', default=DIGITS_CONFIG)
    parser.add_argument('--fine-tune-config', default=FINE_TUNE_CONFIG)
    parser.add_argument('--flyp-config', default=FLYP_CONFIG)
    parser.add_argument('--data-root', default='data/digits')
    parser.add_argument('--work-dir', default='work_dirs/digits_demo')
    return parser.parse_args(argv)


def pretrain_digits(args) -> dict:
    """Prepare the digits data, train the tiny config, score held-out
    digits zero-shot. Returns the accuracies (%)."""
    from mmclip.apis import prepare_train_config, train, zero_shot_accuracy
    from mmclip.datasets.digits import (CLASSNAMES, ZERO_SHOT_TEMPLATES,
                                        prepare_digits)
    prepare_digits(args.data_root)
    cfg = prepare_train_config(
        args.digits_config, work_dir=args.work_dir,
        cfg_options={'train_dataloader.dataset.data_root': args.data_root,
                     'cpu_threads': args.threads})
    model = train(cfg).model.eval()
    model.cfg = cfg  # evaluation preprocessing comes from the config
    images, labels = read_labelled(args.data_root, 'val.csv')
    acc = zero_shot_accuracy(model, images, labels, CLASSNAMES,
                             ZERO_SHOT_TEMPLATES, topk=(1, 5))
    print(f'\nDigits: tiny CLIP pretrained from scratch for '
          f'{cfg.train_cfg.max_epochs} epochs on {args.data_root}/train.csv; '
          f'zero-shot on {len(images)} held-out digits with prompts never '
          f'seen in training {list(ZERO_SHOT_TEMPLATES)}:')
    print(f'  top-1 {acc["top1"]:.1f} %   top-5 {acc["top5"]:.1f} %   '
          f'(chance 10 %)')
    print(f'  curves: {osp.join(cfg.work_dir, "training_curves.png")}')
    infer_with_checkpoint(args, cfg, images[:8])
    return acc


def read_labelled(data_root: str, ann_file: str) -> tuple:
    """The image paths and labels of a ``filepath,label`` CSV of the
    digits data."""
    with open(osp.join(data_root, ann_file)) as f:
        rows = list(csv.DictReader(f))
    return ([osp.join(data_root, r['filepath']) for r in rows],
            [int(r['label']) for r in rows])


def infer_with_checkpoint(args, cfg, images) -> None:
    """What a user does next: ``tools/inference.py`` with the run's last
    checkpoint on a few held-out digits (table + one PNG each)."""
    import subprocess
    ckpt = osp.join(cfg.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    show_dir = osp.join(cfg.work_dir, 'predictions')
    options = ['--model', 'clip_vit-tiny-p8_zeroshot-cls_digits-32px',
               '--checkpoint', ckpt, '--topk', '3', '--show-dir', show_dir,
               # 30 prompts: no need to cache the classifier on disk
               '--cfg-options', 'model.predict_head.cache_dir=None']
    print('\n$ python tools/inference.py <8 held-out digits> ' +
          ' '.join(options))
    tool = osp.join(TOOLS_DIR, 'inference.py')
    cmd = [tool, *images, *options]
    subprocess.run([sys.executable, *cmd], check=True)


def digits_data_options(data_root: str, test_set: str = 'val.csv') -> dict:
    """``--cfg-options`` pointing the fine-tune config's three dataloaders
    at ``data_root`` (the config reads ``data/digits``), testing on
    ``test_set``."""
    options = {'test_dataloader.dataset.ann_file': test_set}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options[f'{loader}.dataset.data_root'] = data_root
        options[f'{loader}.dataset.classes'] = osp.join(
            data_root, 'classnames.txt')
    return options


def fine_tune_digits(args, clip_checkpoint: str) -> dict:
    """Zero-shot, linear probe, full fine-tune, WiSE-FT (alpha 0.5) and
    FLYP of the pretrained digits CLIP, each on the held-out and the noisy
    digits.

    Args:
        args (argparse.Namespace): :func:`parse_args`'s.
        clip_checkpoint (str): The digits pretraining's checkpoint.

    Returns:
        dict: Row name -> {test set name (:data:`DIGITS_TEST_SETS`) ->
        top-1 %}.
    """
    from mmclip.apis import prepare_train_config, train
    from mmclip.apis.wise_ft import evaluate_wise_ft

    # The zero-shot head of 10 classes x 3 prompts needs no disk cache.
    options = {'cpu_threads': args.threads,
               'model.init_cfg.checkpoint': clip_checkpoint,
               'model.init_cfg.cache_dir': None,
               **digits_data_options(args.data_root)}
    work_dir = osp.join(args.work_dir, 'fine_tune')
    cfg = prepare_train_config(args.fine_tune_config, work_dir=work_dir,
                               cfg_options=options)
    train(cfg)
    fine_tuned = osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    table = {'zero-shot': {}, 'linear probe': {}, 'full fine-tune': {},
             'WiSE-FT alpha=0.5': {}, 'FLYP': {}}
    table['linear probe'] = probe_digits(args, clip_checkpoint, options)
    for name, ann_file in DIGITS_TEST_SETS.items():
        test_options = dict(options, **{
            'test_dataloader.dataset.ann_file': ann_file})
        # alpha 0 is the zero-shot classifier (ZeroShotInit's, the
        # fine-tune's step 0), 1 the fine-tuned one.
        results = evaluate_wise_ft(
            args.fine_tune_config, clip_checkpoint, fine_tuned,
            alphas=(0., 1., .5), cfg_options=test_options,
            work_dir=osp.join(args.work_dir, 'wise_ft'))
        for row, res in zip(('zero-shot', 'full fine-tune',
                             'WiSE-FT alpha=0.5'), results):
            table[row][name] = res['accuracy/top1']
    table['FLYP'] = flyp_digits(args, clip_checkpoint)
    print_digits_table(table, cfg.train_cfg.max_epochs)
    return table


def flyp_digits(args, clip_checkpoint: str) -> dict:
    """FLYP: the digits CLIP trained on with its contrastive loss, every
    training digit captioned with a zero-shot template and its class name
    (``args.flyp_config``), then scored as a zero-shot classifier with the
    same names and templates.

    Returns:
        dict: Test set name (:data:`DIGITS_TEST_SETS`) -> top-1 %.
    """
    from mmclip.apis import prepare_train_config, train, zero_shot_accuracy
    from mmclip.datasets.digits import CLASSNAMES, ZERO_SHOT_TEMPLATES
    classes = osp.join(args.data_root, 'classnames.txt')
    options = {'cpu_threads': args.threads, 'load_from': clip_checkpoint,
               'train_dataloader.dataset.classnames': classes}
    for key in ('train_dataloader.dataset.dataset', 'val_dataloader.dataset',
                'test_dataloader.dataset'):
        options.update({f'{key}.data_root': args.data_root,
                        f'{key}.classes': classes})
    cfg = prepare_train_config(args.flyp_config, cfg_options=options,
                               work_dir=osp.join(args.work_dir, 'flyp'))
    model = train(cfg).model.eval()
    model.cfg = cfg  # evaluation preprocessing comes from the config
    return {
        name: zero_shot_accuracy(
            model, *read_labelled(args.data_root, ann_file), CLASSNAMES,
            ZERO_SHOT_TEMPLATES, topk=(1, ))['top1']
        for name, ann_file in DIGITS_TEST_SETS.items()
    }


def probe_digits(args, clip_checkpoint: str, options: dict) -> dict:
    """Linear probe of the frozen image tower, fit on ``train.csv`` (its
    ``label`` column) as ``tools/analysis_tools/linear_probe.py`` does.

    Returns:
        dict: Test set name -> top-1 %.
    """
    from mmengine.config import Config

    from mmclip.evaluation import (build_probe_dataloader, load_image_tower,
                                   probe_dataloaders)
    cfg = Config.fromfile(args.fine_tune_config)
    cfg.merge_from_dict(options)
    model = get_model(cfg)
    load_image_tower(model, clip_checkpoint)
    test = cfg.test_dataloader
    loaders = {}
    for name, ann_file in DIGITS_TEST_SETS.items():
        loader = dict(test, dataset=dict(test.dataset, ann_file=ann_file))
        loaders[name] = build_probe_dataloader(loader, test.dataset.pipeline)
    train_loader = build_probe_dataloader(cfg.train_dataloader,
                                          test.dataset.pipeline)
    return probe_dataloaders(model, train_loader, loaders)['top1']


def print_digits_table(table: dict, epochs: int) -> None:
    """The five classifiers' top-1 as one table (markdown)."""
    how = {
        'zero-shot': 'head from the class names, no training',
        'linear probe': 'frozen tower, logistic regression',
        'full fine-tune': f'{epochs} epochs from the zero-shot head',
        'WiSE-FT alpha=0.5': 'mean of zero-shot and fine-tuned weights',
        'FLYP': 'contrastive loss on class-name captions',
    }
    print('\nDigits: the pretrained CLIP as a 10-class classifier, top-1 % '
          'on the held-out digits and on the same digits with pixel noise '
          '(val_shifted.csv, a shift none of them trained on):')
    columns = list(DIGITS_TEST_SETS)
    print(f'| {"classifier":<18} | {"how":<40} | ' +
          ' | '.join(f'{c:>8}' for c in columns) + ' |')
    print(f'|{"-" * 20}|{"-" * 42}|' + '|'.join('-' * 10 for _ in columns)
          + '|')
    for row, accs in table.items():
        print(f'| {row:<18} | {how[row]:<40} | ' +
              ' | '.join(f'{accs[c]:>8.1f}' for c in columns) + ' |')


def run(args) -> None:
    """The photo, then (unless skipped) the digits parts, as ``args``
    say."""
    from skimage import data

    from mmclip.apis.preflight import ConfigError, check_checkpoint
    check_checkpoint(args.checkpoint, '--checkpoint')
    torch.manual_seed(args.seed)
    try:
        model = get_model(args.model, pretrained=args.checkpoint)
    except ValueError as err:  # an unknown name, weights that do not fit
        raise ConfigError(str(err)) from None
    image = data.chelsea()  # scikit-image's photo of Chelsea the cat
    probs = inference_model(model, image, texts=PROMPTS)['pred_scores']
    tokens = model.tokenizer(PROMPTS)
    size = model.backbone.img_size  # OpenAI's preprocessing crops to it
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f'model: {args.model} ({n_params:.1f}M parameters), image: '
          f'scikit-image chelsea {image.shape[1]}x{image.shape[0]} -> '
          f'{(size, size)}')
    print(f'tokens of "{PROMPTS[0]}": {tokens[0, :8].tolist()} ...')
    print(f'{"prompt":<32}{"probability":>12}')
    for prompt, p in sorted(zip(PROMPTS, probs.tolist()), key=lambda t: -t[1]):
        print(f'{prompt:<32}{p:>12.4f}')
    if args.checkpoint is None:
        print('NOTE: these weights are RANDOM (no weights can be downloaded '
              'here), so the ranking above is meaningless. Convert real '
              'weights with tools/model_converters/clip_to_mmclip.py and pass '
              '--checkpoint to see CLIP pick the cat.')
    if not args.skip_digits:
        pretrain_digits(args)
        if not args.skip_fine_tune:
            fine_tune_digits(args, find_latest_checkpoint(args.work_dir))


def main(argv=None) -> int:
    """Run the demo; a user error prints one ``error:`` line and returns
    1."""
    from mmclip.apis.cli import run_tool
    return run_tool(run, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
