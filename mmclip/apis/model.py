"""Building models from configs or names, and loading weights into them."""
import difflib
import glob
import os.path as osp
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmclip.errors import ConfigError
from mmclip.model_index import (find_model_info, get_model_info, list_models,
                                no_published_weights)
# Loading is the models' (ZeroShotInit uses it too); mmclip.apis re-exports
# it, as users and the docs know it from here.
from mmclip.models.pretrained import load_pretrained

__all__ = ['config_roots', 'find_config', 'get_model', 'load_pretrained',
           'model_names']


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
        ConfigError: For an unknown name, listing the closest names and
            :func:`model_names` (a ``ValueError``, which callers caught
            before).
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
    raise ConfigError(f'Unknown model {name!r}.{hint} Pass a config file '
                      f'path or one of {available}.')


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
    ``classes`` list of the config's test dataset (a converted classifier's
    config names them), else the ``METAINFO`` of the test dataset's
    class."""
    found = dict(meta.get('dataset_meta') or {})
    if 'CLASSES' in meta:
        found.setdefault('classes', meta['CLASSES'])
    if found.get('classes'):
        return found
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    if isinstance(dataset.get('classes'), (list, tuple)):
        # e.g. a fine-tuning run whose training set named no classes
        return dict(found, classes=list(dataset['classes']))
    if 'dataset_meta' in meta or 'CLASSES' in meta:
        return found
    dataset_type = dataset.get('type')
    if isinstance(dataset_type, str):
        from mmclip.registry import DATASETS
        dataset_type = DATASETS.get(dataset_type)
    return dict(getattr(dataset_type, 'METAINFO', {}))
