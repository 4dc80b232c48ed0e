"""Preparing a training config and running it (``tools/train.py``)."""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from mmclip.utils.checkpoint import add_trusted_dir

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
                         launcher: str = 'none') -> Config:
    """Load ``config`` and apply the usual command-line overrides.

    Args:
        config (str): Config file path.
        work_dir (str, optional): Where logs and checkpoints go; defaults to
            ``./work_dirs/{config name}``.
        resume (str, optional): ``'auto'`` resumes from the latest checkpoint
            in the work dir; a path resumes from that checkpoint (it must be
            inside the work dir: only the run's own full-state checkpoints
            are unpickled). Defaults to None (no resume).
        amp (bool): Mixed precision via the matching AMP optim wrapper.
        amp_dtype (str): ``'bfloat16'`` (default, no loss scaling needed) or
            ``'float16'``.
        cfg_options (dict, optional): Overrides merged into the config.
        launcher (str): ``'none'``, ``'pytorch'`` (torchrun), ``'slurm'`` or
            ``'mpi'``.

    Returns:
        Config: Ready for :func:`train`.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'Config {config!r} does not exist.')
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
            raise ValueError(f'--amp cannot convert optim wrapper {wrapper!r};'
                             ' set an AMP wrapper in the config instead.')
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume:
        cfg.resume, cfg.load_from = True, resume
    return cfg


def train(cfg: Config):
    """Build the runner from ``cfg`` and train.

    Returns:
        mmengine.runner.Runner: The runner after training.
    """
    import mmclip.engine  # noqa: F401 (hooks, wrappers, safe loading)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    # The run's own work dir is the one place full-state checkpoints are
    # unpickled from (to resume); see mmclip.utils.checkpoint.
    add_trusted_dir(cfg.work_dir)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()
    return runner
