"""Preparing a training config and running it (``tools/train.py``)."""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from mmclip.utils.checkpoint import (UnsafeCheckpointError,
                                     mmclip_checkpoint_loading, unsafe_globals)
from .launch import setup_distributed
from .preflight import (ConfigError, MissingFileError, check_accumulation,
                        check_config_file, check_data_files, check_model_files)

# Plain wrappers and their AMP counterparts (``--amp`` switches between them).
_AMP_WRAPPERS = {
    'OptimWrapper': 'AmpOptimWrapper',
    'NonFiniteSkipOptimWrapper': 'NonFiniteSkipAmpOptimWrapper',
}


def prepare_train_config(config: str,
                         work_dir: Optional[str] = None,
                         resume: Optional[str] = None,
                         amp: bool = False,
                         amp_dtype: str = 'bfloat16',
                         cfg_options: Optional[dict] = None,
                         launcher: str = 'none',
                         auto_scale_lr: bool = False) -> Config:
    """Load ``config`` and apply the usual command-line overrides.

    Args:
        config (str): Config file path.
        work_dir (str, optional): Where logs and checkpoints go; defaults to
            ``./work_dirs/{config name}``.
        resume (str, optional): ``'auto'`` resumes from the latest checkpoint
            in the work dir; a path resumes from that checkpoint, wherever
            it is. Defaults to None (no resume).
        amp (bool): Mixed precision via the matching AMP optim wrapper.
        amp_dtype (str): ``'bfloat16'`` (default, no loss scaling needed) or
            ``'float16'``.
        cfg_options (dict, optional): Overrides merged into the config.
        launcher (str): ``'none'``, ``'pytorch'`` (torchrun), ``'slurm'`` or
            ``'mpi'``.
        auto_scale_lr (bool): Scale the learning rate linearly with the
            global batch size (processes x ``train_dataloader.batch_size``)
            over the config's ``auto_scale_lr.base_batch_size``, the batch
            size its learning rate was set for (mmengine's
            ``Runner.scale_lr``; Goyal et al. 2017). Defaults to False.

    Returns:
        Config: Ready for :func:`train`.

    Raises:
        MissingFileError: ``config`` does not exist.
        ConfigError: ``amp`` or ``auto_scale_lr`` cannot apply to it.
    """
    check_config_file(config)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(config))[0])
    if amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper in _AMP_WRAPPERS:
            cfg.optim_wrapper.type = _AMP_WRAPPERS[wrapper]
            cfg.optim_wrapper.dtype = amp_dtype
        elif wrapper not in _AMP_WRAPPERS.values():
            raise ConfigError(
                f'--amp cannot convert optim wrapper {wrapper!r}; set an AMP '
                'wrapper in the config instead.')
    if auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise ConfigError(
                f'--auto-scale-lr needs `auto_scale_lr = dict('
                f'base_batch_size=N)` in {config}: the global batch size its '
                'learning rate was set for.')
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume:
        cfg.resume, cfg.load_from = True, resume
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'PlainCheckpointHook' for h in hooks):
        # Every checkpoint tools/train.py writes loads with weights_only=True.
        cfg.custom_hooks = hooks + [dict(type='PlainCheckpointHook')]
    return cfg


def check_resumable(cfg: Config) -> None:
    """Refuse to resume from a checkpoint whose training state could only be
    rebuilt by executing its pickle (one written without
    :class:`~mmclip.engine.hooks.PlainCheckpointHook`, e.g. by an older
    mmengine run), before any work is done.

    Raises:
        MissingFileError: The checkpoint to resume from does not exist.
        UnsafeCheckpointError: Naming the file, the objects it holds and the
            fix (start from its weights with ``load_from``).
    """
    if not cfg.get('resume'):
        return
    path = cfg.get('load_from')
    if path is None:
        from mmengine.runner import find_latest_checkpoint
        path = find_latest_checkpoint(cfg.work_dir)
    if path is None:
        return  # nothing to resume from: mmengine starts from scratch
    if not osp.isfile(path):
        raise MissingFileError(
            f'Cannot resume from {path!r}: no such checkpoint. Pass an '
            'existing epoch_N.pth / iter_N.pth, or --resume alone for the '
            'latest checkpoint of the work dir.')
    names = unsafe_globals(path)
    if names:
        raise UnsafeCheckpointError(
            f'Cannot resume from {path!r}: its training state holds '
            f'{", ".join(names)}, which only executing the pickle could '
            'rebuild (it was not written by an mmclip run). Start from its '
            f'weights instead: --cfg-options load_from={path} without '
            '--resume.')


def train(cfg: Config):
    """Check ``cfg`` (:func:`check_resumable`, the data files), join the
    process group (:func:`mmclip.apis.launch.setup_distributed`: CPU runs
    with ``--launcher pytorch`` too), build the runner
    (:func:`mmclip.engine.build_runner`: quiet console, threads fitted to
    the machine, AMP recipes on a CPU) and train.

    Returns:
        mmengine.runner.Runner: The runner after training.

    Raises:
        MissingFileError: The training (or validation) data, the
            checkpoint to resume from, or a file the model reads (see
            :func:`~mmclip.apis.preflight.check_model_files`) is missing.
        ConfigError: The launcher cannot run here, or ``model.accum_steps``
            cannot split the batch (:func:`~mmclip.apis.preflight.
            check_accumulation`).
        UnsafeCheckpointError: See :func:`check_resumable`.
    """
    from mmclip.engine import build_runner
    check_accumulation(cfg)
    check_resumable(cfg)
    # val_cfg = dict() validates too (mmengine builds a ValLoop for any
    # val_cfg that is not None).
    validates = cfg.get('val_cfg') is not None
    check_data_files(cfg, ['train_dataloader'] +
                     (['val_dataloader'] if validates else []))
    check_model_files(cfg)
    setup_distributed(cfg)
    with mmclip_checkpoint_loading():
        runner = build_runner(cfg)
        runner.train()
    return runner
