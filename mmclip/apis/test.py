"""Evaluating a checkpoint with a config (``tools/test.py``).

Besides the config's metrics this adds two optional outputs:

- ``--out preds.json|preds.pkl``: every sample's ``pred_label``,
  ``pred_score``, ``gt_label`` and ``img_path`` (the
  :class:`~mmclip.evaluation.DumpPredictions` metric, gathered over ranks);
- ``--show-dir DIR``: PNGs of the first images with their top-k classes
  (:class:`~mmclip.engine.hooks.ShowPredictionsHook`).
"""
import numbers
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .launch import setup_distributed
from .preflight import (ConfigError, check_checkpoint, check_config_file,
                        check_data_files, check_model_files)


def prepare_test_config(config: str,
                        checkpoint: Optional[str],
                        work_dir: Optional[str] = None,
                        out: Optional[str] = None,
                        cfg_options: Optional[dict] = None,
                        launcher: str = 'none') -> Config:
    """Load ``config`` for evaluating ``checkpoint``.

    Args:
        config (str): Config file path.
        checkpoint (str, optional): Weights to load (``cfg.load_from``),
            read without executing anything (see
            :mod:`mmclip.utils.checkpoint`); None evaluates the config's
            initial weights.
        work_dir (str, optional): Logs folder; defaults to
            ``./work_dirs/{config name}``.
        out (str, optional): ``.json`` or ``.pkl`` file for per-sample
            predictions (adds
            :class:`~mmclip.evaluation.DumpPredictions`).
        cfg_options (dict, optional): Overrides merged into the config.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        Config: Ready for :func:`test`.

    Raises:
        MissingFileError: ``config`` or ``checkpoint`` does not exist.
        ConfigError: The config has nothing to test.
    """
    check_config_file(config)
    check_checkpoint(checkpoint, 'CHECKPOINT')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    for key in ('test_dataloader', 'test_evaluator'):
        if not cfg.get(key):
            raise ConfigError(f'Config {config} has no `{key}`; use a '
                              'zero-shot config such as configs/clip/'
                              'clip_vit-base-p32_zeroshot-cls_in1k.py.')
    cfg.setdefault('test_cfg', dict())
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(config))[0])
    cfg.load_from = checkpoint
    cfg.resume = False
    if out:
        dump = dict(type='DumpPredictions', out_file=out)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = list(evaluator) + [dump]
        elif 'metrics' in evaluator:  # an explicit Evaluator config
            metrics = evaluator['metrics']
            metrics = list(metrics) if isinstance(metrics, (list, tuple)) \
                else [metrics]
            evaluator['metrics'] = metrics + [dump]
        else:
            cfg.test_evaluator = [evaluator, dump]
    return cfg


def test(cfg: Config, show_dir: Optional[str] = None,
         max_show: int = 16) -> dict:
    """Check that the test data exists, join the process group
    (:func:`mmclip.apis.launch.setup_distributed`: CPU runs with
    ``--launcher pytorch`` too), build the runner, evaluate, print the
    metrics (rank 0 only in multi-process runs).

    Args:
        cfg (Config): From :func:`prepare_test_config`.
        show_dir (str, optional): Folder for annotated PNGs of the first
            ``max_show`` images. Defaults to None.
        max_show (int): Images drawn per rank. Defaults to 16.

    Returns:
        dict: The metrics, e.g. ``{'accuracy/top1': ..., 'accuracy/top5':
        ...}``.

    Raises:
        MissingFileError: The test data, or a file the model reads, is
            missing.
        ConfigError: The launcher cannot run here.
        CheckpointMismatchError: The checkpoint has no weights for a part
            of the model (e.g. a CLIP checkpoint with a classifier config).
    """
    from mmengine.dist import is_main_process
    from mmengine.model import is_model_wrapper

    import mmclip.datasets  # noqa: F401 (registers the datasets)
    import mmclip.models  # noqa: F401 (registers the heads)
    from mmclip.engine import build_runner
    from mmclip.engine.hooks import ShowPredictionsHook
    from mmclip.models.pretrained import (checkpoint_fits_config,
                                          checkpoint_fits_model)
    from mmclip.utils.checkpoint import mmclip_checkpoint_loading
    check_data_files(cfg, ['test_dataloader'])
    check_model_files(cfg, init_weights=False)
    # The runner loads non-strictly: a CLIP checkpoint in a classifier
    # config would be evaluated with a random head. Checked before the
    # runner writes its work dir where the model builds on the meta device.
    checkpoint = osp.expanduser(cfg.load_from or '')
    checked = osp.isfile(checkpoint) and checkpoint_fits_config(
        cfg.model, checkpoint)
    setup_distributed(cfg)
    with mmclip_checkpoint_loading():
        runner = build_runner(cfg)
        if not checked and osp.isfile(checkpoint):
            model = runner.model.module if is_model_wrapper(
                runner.model) else runner.model
            checkpoint_fits_model(model, checkpoint)
        if show_dir:
            runner.register_hook(ShowPredictionsHook(show_dir, max_show))
        metrics = runner.test()
    if is_main_process():  # every rank has the same metrics
        for key, value in metrics.items():
            # Rounded as mmengine's log lines (a float32 accuracy prints as
            # 99.99999237060547 otherwise).
            real = isinstance(value, numbers.Real) and not isinstance(
                value, numbers.Integral)
            print(f'{key}: {value:.4f}' if real else f'{key}: {value}')
    return metrics
