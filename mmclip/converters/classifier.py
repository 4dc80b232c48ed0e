"""The mmclip classifier of a transformers ``CLIPForImageClassification``:
its class names, its preprocessing and the config file written beside the
converted checkpoint.

transformers keeps what the weights do not say in two files beside them:
``config.json`` (``id2label``: the class names) and
``preprocessor_config.json`` (the image processor: resize, crop,
normalisation). Both become parts of an mmpretrain config: an
``ImageClassifier`` whose data preprocessor normalises as the image
processor does, and a test pipeline that resizes and crops as it does.
"""
from typing import List, Optional

from mmclip.models.multimodal.clip_model import CLIP_MEAN, CLIP_STD
from .common import ConversionError

# PIL's resampling codes (the image processor's ``resample``) -> mmcv's names
PIL_RESAMPLE = {0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic'}
# What transformers' CLIPImageProcessor does when nothing is saved: OpenAI's
# preprocessing.
CLIP_PROCESSOR_DEFAULTS = dict(
    size=None,  # the image tower's resolution, shortest side
    crop_size=None,  # the same, centre crop
    resample=3,
    do_resize=True,
    do_center_crop=True,
    do_rescale=True,
    rescale_factor=1 / 255,
    do_normalize=True,
    image_mean=list(CLIP_MEAN),
    image_std=list(CLIP_STD))
_WITHOUT_PROCESSOR = (
    'Move the file away to convert with OpenAI\'s preprocessing, then edit '
    'the test pipeline of the config written beside the checkpoint.')


def hf_classes(hf_config: Optional[dict]) -> Optional[List[str]]:
    """Class names in label order from a ``config.json``'s ``id2label``.

    Args:
        hf_config (dict, optional): The parsed ``config.json``.

    Returns:
        list[str] | None: None when there is no ``id2label``.
    """
    id2label = (hf_config or {}).get('id2label')
    if not isinstance(id2label, dict) or not id2label:
        return None
    labels = {int(k): str(v) for k, v in id2label.items()}
    if sorted(labels) != list(range(len(labels))):
        raise ConversionError(
            f'config.json: id2label has the ids {sorted(labels)[:10]}, not '
            f'0..{len(labels) - 1}; fix its id2label.')
    return [labels[i] for i in range(len(labels))]


def _side_pair(value, name: str) -> List[int]:
    """``[height, width]`` of an image processor size entry."""
    if isinstance(value, int):
        return [value, value]
    if isinstance(value, dict) and {'height', 'width'} <= set(value):
        return [int(value['height']), int(value['width'])]
    raise ConversionError(
        f'preprocessor_config.json: {name}={value!r} is not a size mmclip '
        'can reproduce (an int or {"height", "width"}). ' + _WITHOUT_PROCESSOR)


def hf_preprocess(processor: Optional[dict], img_size: int) -> dict:
    """What a transformers image processor does to an image, in mmclip's
    terms.

    Args:
        processor (dict, optional): The parsed ``preprocessor_config.json``
            (``CLIPImageProcessor``, ``ViTImageProcessor``, ...); None uses
            ``CLIPImageProcessor``'s defaults (OpenAI's preprocessing) at
            ``img_size``.
        img_size (int): The image tower's resolution.

    Returns:
        dict: Plain values: ``mean`` and ``std`` (RGB, 0-255 pixels, as
        mmpretrain's data preprocessors take them), ``resize_short`` (int,
        shortest side) or ``resize`` (``[height, width]``) or neither,
        ``crop`` (``[height, width]`` centre crop, or None),
        ``interpolation`` and ``source`` (where it comes from).
    """
    cfg = dict(CLIP_PROCESSOR_DEFAULTS, size=img_size, crop_size=img_size)
    if processor is not None:
        # a saved processor lists every step it has; one without
        # do_center_crop (ViTImageProcessor) has no crop
        cfg['do_center_crop'] = False
        cfg.update({k: v for k, v in processor.items() if k in cfg})
    resample = PIL_RESAMPLE.get(cfg['resample'])
    if resample is None:
        raise ConversionError(
            f'preprocessor_config.json: resample={cfg["resample"]!r} has no '
            f'mmclip equivalent (supported: {PIL_RESAMPLE}). ' +
            _WITHOUT_PROCESSOR)
    # (x * rescale - mean) / std == (x - mean / rescale) / (std / rescale)
    rescale = cfg['rescale_factor'] if cfg['do_rescale'] else 1.
    mean = cfg['image_mean'] if cfg['do_normalize'] else [0.] * 3
    std = cfg['image_std'] if cfg['do_normalize'] else [1.] * 3
    # rounded: 0.48145466 * 255 is 122.7709383, not 122.77093830000001
    out = dict(
        mean=[round(float(m) / rescale, 10) for m in mean],
        std=[round(float(s) / rescale, 10) for s in std],
        crop=_side_pair(cfg['crop_size'], 'crop_size')
        if cfg['do_center_crop'] else None,
        interpolation=resample,
        source='preprocessor_config.json' if processor else
        "CLIPImageProcessor's defaults (no preprocessor_config.json)")
    size = cfg['size']
    if isinstance(size, int):
        # An int is the shortest side for CLIP's processor, a square for
        # the others (transformers' default_to_square).
        kind = (processor or {}).get('image_processor_type') or (
            processor or {}).get('feature_extractor_type') or 'CLIP'
        size = dict(shortest_edge=size) if 'CLIP' in kind else dict(
            height=size, width=size)
    if cfg['do_resize'] and isinstance(size, dict) and \
            'shortest_edge' in size:
        out['resize_short'] = int(size['shortest_edge'])
    elif cfg['do_resize']:
        out['resize'] = _side_pair(size, 'size')
    return out


def _pair(value) -> List[int]:
    """``[height, width]`` of an mmcv size (an int, or ``(width,
    height)``)."""
    if isinstance(value, int):
        return [value, value]
    width, height = value
    return [int(height), int(width)]


def hf_image_processor(cfg) -> Optional[dict]:
    """The transformers ``CLIPImageProcessor`` settings of a classifier's
    config: the inverse of :func:`hf_preprocess`.

    Args:
        cfg (Config): The classifier's config (``model.data_preprocessor``
            and its test pipeline).

    Returns:
        dict | None: The content of a ``preprocessor_config.json``; None
        when the config has no test pipeline or does something the image
        processor cannot (other transforms than a resize and a centre crop,
        BGR normalisation).
    """
    from mmclip.datasets.pipelines import config_test_pipeline
    norm = cfg.model.get('data_preprocessor') or {}
    pipeline = config_test_pipeline(cfg)
    if not (pipeline and norm.get('mean') and norm.get('std')
            and norm.get('to_rgb')):
        return None
    steps = [
        dict(step) for step in pipeline
        if step.get('type') not in ('LoadImageFromFile', 'LoadImageRGB',
                                    'PackInputs')
    ]
    processor = dict(
        image_processor_type='CLIPImageProcessor',
        do_convert_rgb=True,
        do_resize=False,
        do_center_crop=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[round(m / 255, 10) for m in norm['mean']],
        image_std=[round(s / 255, 10) for s in norm['std']],
        resample=3)
    resample = {name: code for code, name in PIL_RESAMPLE.items()}
    if steps and steps[0]['type'] in ('ResizeEdge', 'Resize'):
        resize = steps.pop(0)
        if resize.get('interpolation', 'bilinear') not in resample or (
                resize['type'] == 'ResizeEdge'
                and resize.get('edge', 'short') != 'short') or (
                    resize['type'] == 'Resize'
                    and resize.get('keep_ratio')):
            return None
        height, width = _pair(resize['scale'])
        processor.update(
            do_resize=True,
            resample=resample[resize.get('interpolation', 'bilinear')],
            size=dict(shortest_edge=height) if resize['type'] ==
            'ResizeEdge' else dict(height=height, width=width))
    if steps and steps[0]['type'] == 'CenterCrop':
        height, width = _pair(steps.pop(0)['crop_size'])
        processor.update(
            do_center_crop=True, crop_size=dict(height=height, width=width))
    return None if steps else processor


def classifier_meta(layout: str, hints: dict, head: dict, img_size: int,
                    notes: List[str]) -> dict:
    """What the meta of a converted classifier adds: its class names and,
    for transformers' classifiers, its preprocessing.

    Args:
        layout (str): The source layout.
        hints (dict): ``SourceCheckpoint.hints``.
        head (dict): The head :func:`~mmclip.converters.mmpretrain.
            describe_head` found.
        img_size (int): The image tower's resolution.
        notes (list[str]): Extended with what the user should know.

    Returns:
        dict: Any of ``dataset_meta`` (``{'classes': [...]}``) and
        ``preprocess`` (see :func:`hf_preprocess`; with it a config file is
        written beside the checkpoint).
    """
    extra, classes = {}, None
    if layout == 'hf_cls':
        notes.append(
            'A transformers CLIPForImageClassification: mmpretrain\'s '
            'ImageClassifier(backbone=model_cfg["vision_backbone"], '
            'head=classifier_head) gives its logits; its post_layernorm, '
            'which they never use, is left out.')
        classes = hf_classes(hints.get('hf_config'))
        if classes is None:
            notes.append('config.json names no classes (id2label): '
                         'predictions are class indices.')
        extra['preprocess'] = hf_preprocess(
            hints.get('hf_preprocessor'), img_size)
    elif layout == 'mmclip':
        # converted again: keep what the first conversion found
        meta = hints.get('mmclip_meta') or {}
        classes = (meta.get('dataset_meta') or {}).get('classes')
        if meta.get('preprocess'):
            extra['preprocess'] = meta['preprocess']
    else:
        notes.append(
            'The mmpretrain classifier head is kept under head.* with '
            "mmpretrain's names; it loads into mmpretrain's ImageClassifier("
            'backbone=model_cfg["vision_backbone"], head=classifier_head).')
    if classes is not None:
        if len(classes) != head.get('num_classes'):
            raise ConversionError(
                f'The source names {len(classes)} classes but its classifier '
                f'has {head.get("num_classes")} outputs; fix the id2label of '
                'its config.json.')
        extra['dataset_meta'] = dict(classes=list(classes))
    return extra


def preprocess_pipeline(preprocess: dict) -> List[dict]:
    """mmpretrain's test pipeline for :func:`hf_preprocess`'s resizing
    (the normalisation is the data preprocessor's)."""
    steps = [dict(type='LoadImageFromFile')]
    if 'resize_short' in preprocess:
        steps.append(
            dict(type='ResizeEdge', scale=preprocess['resize_short'],
                 edge='short', interpolation=preprocess['interpolation'],
                 backend='pillow'))
    elif 'resize' in preprocess:
        height, width = preprocess['resize']
        steps.append(
            dict(type='Resize', scale=(width, height),
                 interpolation=preprocess['interpolation'],
                 backend='pillow'))
    if preprocess['crop']:
        height, width = preprocess['crop']
        steps.append(dict(type='CenterCrop', crop_size=(width, height)))
    return steps + [dict(type='PackInputs')]


def classifier_config(meta: dict) -> dict:
    """The mmpretrain config of a converted transformers classifier: its
    ``ImageClassifier`` and a test set to evaluate it on.

    The test set is a CSV of ``filepath,label`` rows
    (:class:`~mmclip.datasets.CsvClassificationDataset`; labels are indices
    into ``classes``, the classifier's label order) under
    ``data/my_dataset``; ``--cfg-options`` points it elsewhere.

    Args:
        meta (dict): The conversion's meta, with ``model_cfg``,
            ``classifier_head``, ``preprocess`` and, when the source names
            its classes, ``dataset_meta``.

    Returns:
        dict: The config's top-level variables.
    """
    preprocess = meta['preprocess']
    head = dict(meta['classifier_head'])
    pipeline = preprocess_pipeline(preprocess)
    dataset = dict(
        type='CsvClassificationDataset',
        data_root='data/my_dataset',
        ann_file='val.csv',
        pipeline=pipeline,
        test_mode=True)
    classes = (meta.get('dataset_meta') or {}).get('classes')
    if classes:
        dataset['classes'] = list(classes)
    return dict(
        default_scope='mmclip',
        model=dict(
            _scope_='mmclip',
            type='ImageClassifier',
            backbone=meta['model_cfg']['vision_backbone'],
            head=head,
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=preprocess['mean'],
                std=preprocess['std'],
                to_rgb=True)),
        test_pipeline=pipeline,
        test_dataloader=dict(
            batch_size=32,
            num_workers=2,
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=False)),
        test_evaluator=dict(
            type='Accuracy',
            topk=(1, 5) if head['num_classes'] >= 5 else (1, )),
        test_cfg=dict())


def classifier_config_text(meta: dict, config_path: str,
                           checkpoint_path: str) -> str:
    """:func:`classifier_config` as the text of a config file, headed by
    what it is and the commands that use it."""
    from mmengine.config import Config
    body = Config(classifier_config(meta)).pretty_text
    header = [
        '# Converted by tools/model_converters/clip_to_mmclip.py from '
        f'{meta["source_file"]}:',
        '# a transformers CLIPForImageClassification '
        f'({meta["classifier_head"]["num_classes"]} classes) as an '
        'mmpretrain ImageClassifier;',
        f'# preprocessing from {meta["preprocess"]["source"]}.',
        '# Evaluate on a CSV of filepath,label rows (label: the index in',
        '# test_dataloader.dataset.classes):',
        f'#   python tools/test.py {config_path} {checkpoint_path} \\',
        '#       --cfg-options test_dataloader.dataset.data_root=DIR',
        '# Export back to transformers:',
        '#   python tools/model_converters/mmclip_to_hf.py '
        f'{config_path} \\',
        f'#       {checkpoint_path} OUT_DIR',
    ]
    return '\n'.join(header) + '\n' + body
