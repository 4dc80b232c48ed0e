"""WiSE-FT: weight-space ensembles of a zero-shot and a fine-tuned model.

Wortsman et al., "Robust fine-tuning of zero-shot models" (CVPR 2022,
arXiv 2109.01903): every weight is interpolated,
``theta(alpha) = (1 - alpha) * theta_zero_shot + alpha * theta_fine_tuned``.
``alpha = 0`` is the zero-shot model, ``alpha = 1`` the fine-tuned one; in
between (0.5 in the paper) keeps most of the fine-tuned accuracy and much of
the zero-shot robustness to distribution shift.

The two endpoints are models of one architecture, of either kind
(:func:`checkpoint_kind`):

* **two CLIP models** (``backbone.*``, ``text_encoder.*``,
  ``logit_scale``): a caption fine-tune (``tools/train.py`` with a
  ``*_caption-ft-*`` config) and the CLIP checkpoint it started from. Both
  towers and the temperature are interpolated; the result is a CLIP
  checkpoint, scored zero-shot by the config's ``predict_head``.
* **two classifiers**: an mmpretrain ``ImageClassifier`` with a
  ``CLIPVisionTransformer`` backbone and a ``CLIPClsHead`` (``backbone.*`` +
  ``head.fc.*``). The zero-shot endpoint is either such a checkpoint, or the
  **CLIP checkpoint** the fine-tuning started from plus the fine-tune
  config: the config's classifier, initialised by its ``ZeroShotInit`` from
  that CLIP checkpoint (class names and templates of the config), is the
  zero-shot classifier the fine-tuning started from.

The fine-tuned checkpoint is a training run's ``epoch_N.pth``; with EMA its
``state_dict`` holds the averaged weights, which are the ones used.

``tools/model_converters/wise_ft.py`` is the command line of this module.
"""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config

from mmclip.errors import shorten_list
from mmclip.utils.checkpoint import load_weights
from mmclip.visualization.wise_ft_curve import plot_wise_ft
from .preflight import (ConfigError, check_checkpoint, check_config_file,
                        check_data_files, check_model_files)

StateDict = Dict[str, torch.Tensor]

__all__ = [
    'CheckpointMismatchError', 'check_same_architecture', 'checkpoint_kind',
    'interpolate_weights', 'zero_shot_classifier_weights',
    'load_wise_ft_endpoint', 'load_wise_ft_endpoints', 'wise_ft',
    'evaluate_wise_ft', 'plot_wise_ft'
]


class CheckpointMismatchError(ValueError):
    """The two WiSE-FT endpoints are not weights of one architecture."""


def checkpoint_kind(state_dict: StateDict) -> str:
    """``'clip'`` for a CLIP model's weights (it has a text tower,
    ``text_encoder.*``), ``'classifier'`` for anything else (an image
    classifier: ``backbone.*`` and ``head.*``)."""
    return 'clip' if any(k.startswith('text_encoder.')
                         for k in state_dict) else 'classifier'


def check_same_architecture(zero_shot: StateDict,
                            fine_tuned: StateDict) -> None:
    """Refuse two state dicts that are not of one architecture.

    Args:
        zero_shot (dict[str, Tensor]): Zero-shot classifier weights.
        fine_tuned (dict[str, Tensor]): Fine-tuned classifier weights.

    Raises:
        CheckpointMismatchError: One error naming the parameters only one
            side has and those whose shapes differ.
    """
    problems = []
    only_zero_shot = sorted(set(zero_shot) - set(fine_tuned))
    only_fine_tuned = sorted(set(fine_tuned) - set(zero_shot))
    if only_zero_shot:
        problems.append(f'only in the zero-shot weights: '
                        f'{shorten_list(only_zero_shot, 8)}')
    if only_fine_tuned:
        problems.append(f'only in the fine-tuned weights: '
                        f'{shorten_list(only_fine_tuned, 8)}')
    shapes = [
        f'{k} {tuple(zero_shot[k].shape)} vs {tuple(fine_tuned[k].shape)}'
        for k in sorted(set(zero_shot) & set(fine_tuned))
        if zero_shot[k].shape != fine_tuned[k].shape
    ]
    if shapes:
        problems.append(f'different shapes (zero-shot vs fine-tuned): '
                        f'{shorten_list(shapes, 8)}')
    if problems:
        raise CheckpointMismatchError(
            'WiSE-FT interpolates two classifiers of one architecture, but '
            'the checkpoints differ: ' + '; '.join(problems) + '. Use the '
            'zero-shot classifier the fine-tuning started from (or its CLIP '
            'checkpoint with the fine-tune config).')


def interpolate_weights(zero_shot: StateDict, fine_tuned: StateDict,
                        alpha: float) -> StateDict:
    """``(1 - alpha) * zero_shot + alpha * fine_tuned`` for every tensor.

    ``alpha=0`` and ``alpha=1`` return copies of the endpoints, bit for bit.
    Floating-point tensors are mixed in float32 and cast back to their
    dtype; other tensors (integer buffers) must be equal and are kept.

    Args:
        zero_shot (dict[str, Tensor]): Zero-shot classifier weights.
        fine_tuned (dict[str, Tensor]): Fine-tuned classifier weights.
        alpha (float): Mixing coefficient in ``[0, 1]``.

    Returns:
        dict[str, Tensor]: The interpolated weights (fine-tuned key order).

    Raises:
        CheckpointMismatchError: See :func:`check_same_architecture`.
        ValueError: ``alpha`` outside ``[0, 1]``.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f'alpha={alpha} must be in [0, 1] (0: zero-shot, '
                         '1: fine-tuned).')
    check_same_architecture(zero_shot, fine_tuned)
    mixed = {}
    for key, tuned in fine_tuned.items():
        start = zero_shot[key]
        if not tuned.is_floating_point():
            if not torch.equal(start, tuned):
                raise CheckpointMismatchError(
                    f'{key} is not a floating-point tensor and differs '
                    'between the checkpoints: it cannot be interpolated.')
            mixed[key] = tuned.clone()
        elif alpha == 0:
            mixed[key] = start.clone()
        elif alpha == 1:
            mixed[key] = tuned.clone()
        else:
            value = (1 - alpha) * start.float() + alpha * tuned.float()
            mixed[key] = value.to(tuned.dtype)
    return mixed


def _init_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmclip')
    import mmclip.engine  # noqa: F401 (runner-side modules)
    import mmclip.models  # noqa: F401 (ZeroShotInit, CLIPClsHead)


def _load_config(config: Union[str, Config],
                 cfg_options: Optional[dict] = None) -> Config:
    cfg = Config.fromfile(config) if isinstance(config, str) else \
        copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def zero_shot_classifier_weights(config: Union[str, Config],
                                 clip_checkpoint: str,
                                 cfg_options: Optional[dict] = None
                                 ) -> StateDict:
    """The zero-shot endpoint made from a CLIP checkpoint: the config's
    classifier initialised by its ``ZeroShotInit`` from ``clip_checkpoint``.

    Args:
        config (str | Config): A fine-tune config whose ``model.init_cfg``
            is ``ZeroShotInit`` (e.g. ``configs/clip/clip_vit-base-p16_ft-
            8xb256-amp-50e_in1k.py``).
        clip_checkpoint (str): The CLIP checkpoint (replaces the config's
            ``model.init_cfg.checkpoint``).
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        dict[str, Tensor]: The classifier's state dict (CPU).
    """
    cfg = _load_config(config, cfg_options)
    init_cfg = cfg.model.get('init_cfg')
    if not isinstance(init_cfg, dict) or init_cfg.get('type') not in (
            'ZeroShotInit', 'mmclip.ZeroShotInit'):
        raise ValueError(
            f'{getattr(cfg, "filename", config)} does not initialise its '
            "classifier with init_cfg=dict(type='ZeroShotInit', ...), so it "
            'cannot make the zero-shot classifier of a CLIP checkpoint. Use '
            'a fine-tune config (configs/clip/*_ft-*.py) or pass a zero-shot '
            'classifier checkpoint.')
    init_cfg['checkpoint'] = clip_checkpoint
    check_model_files(cfg)  # e.g. a templates file of the ZeroShotInit
    _init_scope()
    from mmclip.registry import MODELS
    model = MODELS.build(cfg.model)
    model.init_weights()
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def load_wise_ft_endpoint(path: str,
                          config: Optional[Union[str, Config]] = None,
                          cfg_options: Optional[dict] = None) -> dict:
    """The weights and plain ``meta`` of one WiSE-FT endpoint.

    Args:
        path (str): A classifier checkpoint, or a CLIP checkpoint (it has
            ``text_encoder.*`` weights), which needs ``config``.
        config (str | Config, optional): The fine-tune config that makes
            the zero-shot classifier of a CLIP checkpoint.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        dict: ``state_dict`` and ``meta``.
    """
    weights = load_weights(path)
    if checkpoint_kind(weights['state_dict']) == 'classifier':
        return weights
    if config is None:
        raise ValueError(
            f'{path} is a CLIP checkpoint (it has a text tower), not a '
            'classifier: pass the fine-tune config (--config) whose '
            'ZeroShotInit makes the zero-shot classifier from it.')
    return dict(
        state_dict=zero_shot_classifier_weights(config, path, cfg_options),
        meta={})


def load_wise_ft_endpoints(zero_shot: str,
                           fine_tuned: str,
                           config: Optional[Union[str, Config]] = None,
                           cfg_options: Optional[dict] = None
                           ) -> Tuple[StateDict, dict]:
    """Both WiSE-FT endpoints, of one kind and architecture.

    A fine-tuned CLIP model pairs with the CLIP checkpoint it started from
    (no config needed); a fine-tuned classifier with a zero-shot classifier
    or with a CLIP checkpoint made into one by ``config`` (see
    :func:`load_wise_ft_endpoint`).

    Args:
        zero_shot (str): The zero-shot endpoint's checkpoint.
        fine_tuned (str): The fine-tuned checkpoint.
        config (str | Config, optional): The fine-tune config of a
            classifier fine-tune.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        tuple[dict, dict]: The zero-shot state dict, and the fine-tuned
        checkpoint's ``state_dict`` and ``meta``.

    Raises:
        CheckpointMismatchError: A CLIP model and a classifier, or two
            architectures (see :func:`check_same_architecture`).
    """
    tuned = load_weights(fine_tuned)
    if checkpoint_kind(tuned['state_dict']) == 'classifier':
        start = load_wise_ft_endpoint(zero_shot, config, cfg_options)
    else:
        start = load_weights(zero_shot)
        if checkpoint_kind(start['state_dict']) != 'clip':
            raise CheckpointMismatchError(
                f'{fine_tuned} is a CLIP model (it has a text tower) but '
                f'{zero_shot} is a classifier: WiSE-FT interpolates two CLIP '
                'models or two classifiers. For a caption fine-tune pass the '
                'CLIP checkpoint it started from (its load_from) as '
                'ZERO_SHOT.')
    check_same_architecture(start['state_dict'], tuned['state_dict'])
    return start['state_dict'], tuned


def _check_inputs(zero_shot: str, fine_tuned: str,
                  config: Optional[Union[str, Config]]) -> None:
    """Refuse missing endpoint checkpoints or config before any work."""
    check_checkpoint(zero_shot, 'ZERO_SHOT')
    check_checkpoint(fine_tuned, 'FINE_TUNED')
    if isinstance(config, str):
        check_config_file(config)


def wise_ft(zero_shot: str,
            fine_tuned: str,
            out: str,
            alpha: float = 0.5,
            config: Optional[Union[str, Config]] = None,
            cfg_options: Optional[dict] = None) -> StateDict:
    """Write the WiSE-FT checkpoint of ``alpha`` to ``out``.

    Args:
        zero_shot (str): Zero-shot endpoint (see
            :func:`load_wise_ft_endpoints`).
        fine_tuned (str): The fine-tuned checkpoint: a classifier, or a
            CLIP model (a caption fine-tune).
        out (str): Output ``.pth``: ``state_dict`` plus ``meta`` with the
            fine-tuned run's ``dataset_meta`` (class names) and the WiSE-FT
            inputs; it loads with ``torch.load(weights_only=True)``,
            ``tools/test.py`` and ``get_model``.
        alpha (float): 0 is the zero-shot model, 1 the fine-tuned one.
            Defaults to 0.5.
        config (str | Config, optional): Needed when ``zero_shot`` is a CLIP
            checkpoint and ``fine_tuned`` a classifier.
        cfg_options (dict, optional): Overrides merged into ``config``
            (e.g. other templates for the zero-shot classifier).

    Returns:
        dict[str, Tensor]: The interpolated weights.

    Raises:
        MissingFileError: A checkpoint, the config or a file it names is
            missing (before any work).
    """
    from mmclip.converters.convert import save_mmclip_checkpoint
    _check_inputs(zero_shot, fine_tuned, config)
    start, tuned = load_wise_ft_endpoints(zero_shot, fine_tuned, config,
                                          cfg_options)
    mixed = interpolate_weights(start, tuned['state_dict'], alpha)
    meta = dict(wise_ft=dict(alpha=float(alpha), zero_shot=zero_shot,
                             fine_tuned=fine_tuned))
    if 'dataset_meta' in tuned['meta']:
        meta['dataset_meta'] = tuned['meta']['dataset_meta']
    save_mmclip_checkpoint(out, mixed, meta)
    return mixed


def evaluate_wise_ft(config: str,
                     zero_shot: str,
                     fine_tuned: str,
                     alphas: Sequence[float],
                     work_dir: Optional[str] = None,
                     cfg_options: Optional[dict] = None) -> List[dict]:
    """Evaluate the WiSE-FT model of every ``alpha`` on the config's test
    data (its ``test_dataloader`` and ``test_evaluator``): a classifier
    fine-tune with its fine-tune config, a CLIP caption fine-tune with a
    config whose ``CLIPModel`` scores zero-shot (its ``predict_head``, e.g.
    the caption fine-tune config itself).

    One runner is built; each alpha's weights are loaded into its model and
    the test loop runs again.

    Args:
        config (str): The fine-tune config file.
        zero_shot (str): Zero-shot endpoint (see
            :func:`load_wise_ft_endpoints`).
        fine_tuned (str): The fine-tuned checkpoint.
        alphas (Sequence[float]): Mixing coefficients in ``[0, 1]``.
        work_dir (str, optional): Logs folder; defaults to
            ``./work_dirs/wise_ft``.
        cfg_options (dict, optional): Overrides merged into the config
            (e.g. another test set).

    Returns:
        list[dict]: ``{'alpha': a, **metrics}`` per alpha, in order.

    Raises:
        MissingFileError: A checkpoint, the config, its test data or a file
            it names is missing (before any work).
        ConfigError: The config's model is not of the checkpoints' kind.
    """
    from mmengine.model import is_model_wrapper

    from mmclip.apis.test import prepare_test_config
    from mmclip.engine import build_runner
    from mmclip.utils.checkpoint import mmclip_checkpoint_loading
    for alpha in alphas:  # refuse a bad alpha before any work
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha={alpha} must be in [0, 1].')
    _check_inputs(zero_shot, fine_tuned, config)
    cfg = prepare_test_config(
        config, None, work_dir=work_dir or osp.join('work_dirs', 'wise_ft'),
        cfg_options=cfg_options)
    check_data_files(cfg, ['test_dataloader'])
    check_model_files(cfg, init_weights=False)
    start, tuned = load_wise_ft_endpoints(zero_shot, fine_tuned, cfg)
    tuned = tuned['state_dict']
    _check_config_kind(cfg, checkpoint_kind(tuned))
    # The weights are given: no EMA copy to swap in.
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', []) if h['type'] != 'EMAHook'
    ]
    _init_scope()
    results = []
    with mmclip_checkpoint_loading():
        runner = build_runner(cfg)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        for alpha in alphas:
            weights = interpolate_weights(start, tuned, alpha)
            model.load_state_dict(weights, strict=True)
            metrics = runner.test()
            results.append(dict(alpha=float(alpha), **metrics))
    return results


def _check_config_kind(cfg: Config, kind: str) -> None:
    """Refuse a sweep whose config builds another kind of model than the
    checkpoints: CLIP models are scored by a ``CLIPModel`` config's
    zero-shot head, classifiers by their fine-tune config."""
    if ('text_encoder' in cfg.model) == (kind == 'clip'):
        return
    name = getattr(cfg, 'filename', 'the config')
    if kind == 'clip':
        raise ConfigError(
            f'The checkpoints are CLIP models but {name} builds a '
            'classifier: pass a config whose CLIPModel scores zero-shot (a '
            'predict_head), e.g. the caption fine-tune config, as --config.')
    raise ConfigError(
        f'The checkpoints are classifiers but {name} builds a CLIP model: '
        'pass the classifier fine-tune config as --config.')
