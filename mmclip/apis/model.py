"""Building models from configs or names, and loading weights into them."""
import difflib
import glob
import os.path as osp
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmclip.model_index import (find_model_info, get_model_info, list_models,
                                no_published_weights)
from mmclip.utils.checkpoint import load_weights

# The image grid's position embedding is resized on load (see
# CLIPVisionTransformer), so its shape may differ.
_RESIZED_ON_LOAD = 'backbone.positional_embedding'
# Key prefixes of checkpoints that were not converted to mmclip's layout.
_FOREIGN_PREFIXES = {
    'visual.': 'an OpenAI / open_clip state dict',
    'vision_model.': 'a transformers CLIPModel',
    'backbone.patch_embed.': "an mmpretrain ViT classifier",
}


def config_roots() -> list:
    """Folders searched for configs by name: the installed package's copy
    (``mmclip/.mim/configs``) and the source tree's ``configs/``."""
    pkg = osp.dirname(osp.dirname(osp.abspath(__file__)))
    roots = [osp.join(pkg, '.mim', 'configs'),
             osp.join(osp.dirname(pkg), 'configs')]
    return [r for r in roots if osp.isdir(r)]


def find_config(name: str) -> str:
    """Path of the config called ``name`` (file name without ``.py``).

    Leaf configs are searched first, then ``_base_/models``; the other
    ``_base_`` files (schedules, datasets, runtimes) are no models.

    Args:
        name (str): e.g. ``'clip_vit-base-p32_zeroshot-cls_in1k'`` or
            ``'clip_vit-base-p16'``.

    Returns:
        str: The config path.

    Raises:
        ValueError: For an unknown name, listing the closest names and
            :func:`model_names`.
    """
    models_base = osp.join('_base_', 'models', '')
    for root in config_roots():
        hits = sorted(glob.glob(osp.join(root, '**', f'{name}.py'),
                                recursive=True))
        hits = [p for p in hits if '_base_' not in p or models_base in p]
        hits.sort(key=lambda p: '_base_' in p)
        if hits:
            return hits[0]
    available = model_names()
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
    hint = f' Did you mean {" or ".join(close)}?' if close else ''
    raise ValueError(f'Unknown model {name!r}.{hint} Pass a config file path '
                     f'or one of {available}.')


def model_names() -> list:
    """The names :func:`find_config` resolves to a model: the model index's
    (:func:`mmclip.apis.list_models`, one per config in ``configs/clip``)
    and the architectures of ``configs/_base_/models``. Other ``_base_``
    files (schedules, datasets, runtimes) build no model and are left out.

    Returns:
        list[str]: Sorted names.
    """
    names = set(list_models())
    for root in config_roots():
        names.update(
            osp.splitext(osp.basename(p))[0]
            for p in glob.glob(osp.join(root, '_base_', 'models', '*.py')))
    return sorted(names)


def _load_config(model: Union[str, Config], cfg_options=None) -> Config:
    if isinstance(model, Config):
        cfg = model.copy()
    else:
        path = model if osp.isfile(str(model)) else find_config(str(model))
        cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'Config {getattr(cfg, "filename", model)} has no '
                         '`model` field.')
    return cfg


def load_pretrained(model: nn.Module,
                    checkpoint: str,
                    strict: bool = True,
                    model_cfg: Optional[dict] = None) -> dict:
    """Load an mmclip checkpoint's weights into ``model`` without executing
    anything the file names (:func:`mmclip.utils.checkpoint.load_weights`:
    ``weights_only=True``, or for a full training checkpoint such as
    ``work_dirs/.../epoch_24.pth`` an unpickler that keeps only its tensors).

    A checkpoint whose image grid differs from the model's (a 224px
    checkpoint in a 384px model) is resized on load. Anything else that does
    not fit raises one error naming the mismatching keys.

    Args:
        model (nn.Module): The model to fill.
        checkpoint (str): Path to an mmclip checkpoint (``.pth`` written by
            ``tools/model_converters/clip_to_mmclip.py`` or by training).
        strict (bool): Require every model key in the checkpoint and no extra
            keys. Defaults to True.
        model_cfg (dict, optional): The config ``model`` was built from; on a
            mismatch it is compared with the architecture the checkpoint's
            ``meta`` records, to say which setting differs.

    Returns:
        dict: The checkpoint's ``meta`` (empty when it has none).
    """
    weights = load_weights(checkpoint)
    meta, state_dict = weights['meta'], weights['state_dict']
    for prefix, what in _FOREIGN_PREFIXES.items():
        if any(k.startswith(prefix) for k in state_dict):
            raise ValueError(
                f'{checkpoint!r} looks like {what}, not an mmclip checkpoint. '
                'Convert it first: `python tools/model_converters/'
                f'clip_to_mmclip.py {checkpoint} OUT.pth`.')
    own = model.state_dict()
    shape_errors = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state_dict.items()
        if k in own and v.shape != own[k].shape and k != _RESIZED_ON_LOAD
    ]
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    problems = list(shape_errors)
    if strict and missing:
        problems.append(f'missing: {_summarize(missing, own)}')
    if strict and unexpected:
        problems.append(f'unexpected: {_short(unexpected)}')
    if problems:
        hint = ''
        if isinstance(meta.get('model_cfg'), dict) and model_cfg is not None:
            from mmclip.converters import check_model_cfg
            diffs = check_model_cfg(dict(model_cfg), meta)
            if diffs:
                hint = ' Config vs checkpoint: ' + '; '.join(diffs) + '.'
        elif meta.get('model_cfg'):
            hint = f' The checkpoint describes itself as {meta["model_cfg"]}.'
        raise ValueError(
            f'Checkpoint {checkpoint!r} does not match the model config: '
            + '; '.join(problems) + '.' + hint +
            ' Use the config that matches the checkpoint (arch, patch size, '
            'embedding dim) or pass strict=False to load the shared part.')
    model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        MMLogger.get_current_instance().warning(
            f'Loaded {checkpoint} non-strictly; missing {_short(missing)}, '
            f'unexpected {_short(unexpected)}.')
    return meta


def _summarize(missing: list, own: dict) -> str:
    """Name wholly missing top-level parts (``text_encoder.*``) as one."""
    parts = []
    for top in sorted({k.split('.')[0] for k in missing}):
        mine = [k for k in own if k.split('.')[0] == top]
        gone = [k for k in missing if k.split('.')[0] == top]
        if len(gone) == len(mine) and len(mine) > 1:
            parts.append(f'all of {top}.* ({len(gone)} keys: the checkpoint '
                         f'has no {top})')
        else:
            parts.extend(gone)
    return _short(parts)


def _short(keys: list, n: int = 5) -> str:
    more = f' (+{len(keys) - n} more)' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more


def get_model(model: Union[str, Config],
              pretrained: Union[str, bool, None] = None,
              device: Union[str, torch.device] = 'cpu',
              cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a model from a config and optionally load weights into it.

    Args:
        model (str | Config): A model name from :func:`list_models`, a config
            file path, a config name (see :func:`find_config`), or a loaded
            :class:`~mmengine.Config`.
        pretrained (str | bool, optional): Path to an mmclip checkpoint
            (converted, or a training run's ``epoch_N.pth``); its weights
            are read without executing anything (see
            :func:`load_pretrained`). ``True`` raises an error that says
            where the model's original weights are and how to convert them
            (mmclip publishes no converted checkpoints). Defaults to None
            (random weights; False means the same).
        device (str | torch.device): Where to put the model. Defaults to
            ``'cpu'``.
        cfg_options (dict, optional): Overrides merged into the config, e.g.
            ``{'model.vision_backbone.img_size': 384}``.

    Returns:
        nn.Module: The model in eval mode. As :func:`mmpretrain.get_model`,
        it carries ``_config`` (the Config, also as ``cfg``), ``_metainfo``
        (its model-index entry, None for a config outside the index) and
        ``_dataset_meta`` (the checkpoint's, else the test dataset's
        ``METAINFO``), so :func:`mmpretrain.inference_model` accepts it.
    """
    info = get_model_info(model) if isinstance(model, str) else None
    cfg = _load_config(info.config if info else model, cfg_options)
    if info is None:
        info = find_model_info(cfg.filename)
    if pretrained is True:
        raise ValueError(
            no_published_weights(info) if info is not None else
            'pretrained=True needs a model from mmclip.apis.list_models(); '
            'pass the path of a converted checkpoint instead.')
    init_default_scope(cfg.get('default_scope', 'mmclip'))
    import mmclip.engine  # noqa: F401 (registers the runner-side modules)
    from mmclip.registry import MODELS
    net = MODELS.build(cfg.model)
    meta = {}
    if pretrained:
        meta = load_pretrained(net, pretrained, model_cfg=cfg.model)
    net.cfg = net._config = cfg
    if info is not None:
        info.config = cfg  # as mmpretrain's ModelHub.get
    net._metainfo = info
    net._dataset_meta = _dataset_meta(cfg, meta)
    return net.to(device).eval()


def _dataset_meta(cfg: Config, meta: dict) -> dict:
    """Class names etc. as mmpretrain's get_model finds them: the
    checkpoint's ``dataset_meta`` (``CLASSES`` of mmcls 0.x), else the
    ``METAINFO`` of the test dataset's class."""
    if 'dataset_meta' in meta:
        return dict(meta['dataset_meta'])
    if 'CLASSES' in meta:
        return {'classes': meta['CLASSES']}
    dataset_type = cfg.get('test_dataloader', {}).get('dataset', {}).get(
        'type')
    if isinstance(dataset_type, str):
        from mmclip.registry import DATASETS
        dataset_type = DATASETS.get(dataset_type)
    return dict(getattr(dataset_type, 'METAINFO', {}))
