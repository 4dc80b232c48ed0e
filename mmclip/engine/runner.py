"""Building mmengine runners the way mmclip's tools run them: a quiet
console with the full log in the work dir, threads fitted to the machine,
mixed precision that also runs without a GPU."""
import copy
import logging
from typing import Union

from mmengine.config import Config
from mmengine.logging import MMLogger

from mmclip.errors import ConfigError
from .optimizers import amp_wrapper_for_cpu
from .threads import configure_threads, thread_cap

#: Console level of mmclip runs unless the config's ``console_log_level``
#: (or a tool's ``--log-level``) says otherwise; the work dir's log keeps
#: the config's ``log_level`` (mmengine's full log).
DEFAULT_CONSOLE_LEVEL = 'WARNING'


#: Warnings mmengine logs in every run about its own internals (its
#: ``CheckpointHook`` builds a deprecated ``FileClient``): nothing a user
#: can act on, so they stay in the log file only.
MMENGINE_INTERNAL_WARNINGS = ('"FileClient" will be deprecated',
                              '"HardDiskBackend" is the alias of')


def _not_mmengine_internal(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(MMENGINE_INTERNAL_WARNINGS)


def _quiet_console(logger: MMLogger, level: Union[int, str]) -> MMLogger:
    """Raise the level of ``logger``'s console handler (not its file's) and
    keep :data:`MMENGINE_INTERNAL_WARNINGS` off it."""
    level = logging.getLevelName(level) if isinstance(level, str) else level
    for handler in logger.handlers:
        if (isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)):
            handler.setLevel(max(handler.level, level))
            handler.addFilter(_not_mmengine_internal)
    return logger


class QuietConsoleMixin:
    """Gives a runner class a console that shows only records of
    ``console_log_level`` and above from the start (mmengine logs the
    environment and the whole config while the runner is built), while the
    log file in the work dir keeps everything. ``build_logger`` is
    ``Runner``'s hook for its logger; ``FlexibleRunner`` takes its logger
    from the strategy it builds."""
    console_log_level: Union[int, str] = DEFAULT_CONSOLE_LEVEL

    def build_logger(self, *args, **kwargs):
        return _quiet_console(super().build_logger(*args, **kwargs),
                              self.console_log_level)

    def build_strategy(self, *args, **kwargs):
        strategy = super().build_strategy(*args, **kwargs)
        _quiet_console(strategy.logger, self.console_log_level)
        return strategy


def _runner_class(cfg: Config) -> type:
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner_type = cfg.get('runner_type', Runner)
    return RUNNERS.get(runner_type) if isinstance(runner_type,
                                                  str) else runner_type


#: The model wrapper of each distributed strategy of ``FlexibleRunner``
#: when its config names none (mmengine's defaults).
STRATEGY_WRAPPERS = {
    'DDPStrategy': 'MMDistributedDataParallel',
    'FSDPStrategy': 'MMFullyShardedDataParallel',
}


def use_accumulating_wrappers(cfg: Config) -> None:
    """With ``model.accum_steps > 1``, wrap the model in mmclip's
    accumulating DDP/FSDP wrapper instead of mmengine's (in place): only
    those run the model's own training step
    (:mod:`mmclip.models.wrappers.accumulating`). The wrapper's other
    settings are kept; a run without a process group is not wrapped at all.

    Raises:
        ConfigError: The run's wrapper or strategy has no accumulating
            counterpart (DeepSpeed runs its own backward).
    """
    if (cfg.get('model') or {}).get('accum_steps', 1) == 1:
        return
    from mmengine.runner import FlexibleRunner

    from mmclip.models.wrappers import ACCUMULATING_WRAPPERS
    flexible = issubclass(_runner_class(cfg), FlexibleRunner)
    if flexible:
        strategy = cfg.get('strategy')
        if strategy is None:
            if cfg.get('launcher', 'none') == 'none':
                return  # SingleDeviceStrategy: no wrapper
            strategy = cfg.strategy = dict(type='DDPStrategy')
        kind = strategy.get('type')
        if kind == 'SingleDeviceStrategy':
            return
        wrapper = strategy.get('model_wrapper') or {}
        where = f'strategy {kind!r}'
        wrapper_type = wrapper.get('type', STRATEGY_WRAPPERS.get(kind, kind))
    else:
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            # what Runner.wrap_model builds without a model_wrapper_cfg
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        where = 'model_wrapper_cfg'
        wrapper_type = wrapper.get('type', 'MMDistributedDataParallel')
    if wrapper_type in ACCUMULATING_WRAPPERS.values():
        return
    if wrapper_type not in ACCUMULATING_WRAPPERS:
        raise ConfigError(
            f'model.accum_steps={cfg.model.accum_steps} runs the micro-'
            f'batches through the model wrapper, and {where} uses '
            f'{wrapper_type!r}, which cannot: use DDP or FSDP (mmengine\'s '
            'wrappers, which mmclip swaps for its accumulating ones), or '
            'set model.accum_steps=1.')
    wrapper = dict(wrapper, type=ACCUMULATING_WRAPPERS[wrapper_type])
    if flexible:
        strategy['model_wrapper'] = wrapper
    else:
        cfg.model_wrapper_cfg = wrapper


def build_runner(cfg: Config):
    """Build the runner of ``cfg`` for an mmclip run.

    Besides what mmengine does (``runner_type`` is honoured: ``Runner``,
    ``FlexibleRunner`` or a registered one), it

    - shows only ``cfg.console_log_level`` (default ``'WARNING'``) and above
      on the console, with :class:`~mmclip.engine.hooks.ConsoleProgressHook`
      reporting progress and results, while the work dir's log keeps
      ``cfg.log_level``; ``console_log_level='INFO'`` gives mmengine's
      usual console;
    - sets PyTorch's CPU threads (``cfg.cpu_threads``: a number, or
      ``'auto'``, the default, to fit the load of the machine, see
      :mod:`mmclip.engine.threads`) and adds
      :class:`~mmclip.engine.hooks.CPUThreadsHook`. Float sums depend on
      the thread count, so ``'auto'`` keeps a fixed count
      (:func:`~mmclip.engine.threads.thread_cap`) when
      ``cfg.randomness.deterministic`` is set;
    - runs an AMP optim wrapper without a GPU as its CPU counterpart
      (:func:`~mmclip.engine.optimizers.amp_wrapper_for_cpu`);
    - wraps a model with ``accum_steps > 1`` in mmclip's accumulating
      DDP/FSDP wrapper (:func:`use_accumulating_wrappers`).

    Args:
        cfg (Config): A complete config (``work_dir`` set).

    Returns:
        mmengine.runner.Runner: Or the config's ``runner_type``.
    """
    cfg = copy.deepcopy(cfg)
    if cfg.get('optim_wrapper'):
        amp_wrapper_for_cpu(cfg.optim_wrapper)
    use_accumulating_wrappers(cfg)
    threads = cfg.get('cpu_threads', 'auto')
    if threads in ('auto', None) and (cfg.get('randomness')
                                      or {}).get('deterministic'):
        # Results depend on the thread count (the order of float sums):
        # a run asked to be deterministic keeps one.
        threads = thread_cap()
    configure_threads(threads)
    hooks = list(cfg.get('custom_hooks') or [])
    hooks.append(dict(type='mmclip.CPUThreadsHook',
                      adapt=threads in ('auto', None)))
    level = cfg.get('console_log_level', DEFAULT_CONSOLE_LEVEL)
    level = logging.getLevelName(level) if isinstance(level, str) else level
    if level > logging.INFO:
        hooks.append(dict(type='mmclip.ConsoleProgressHook'))
    cfg.custom_hooks = hooks
    base = _runner_class(cfg)
    runner_cls = type(f'QuietConsole{base.__name__}',
                      (QuietConsoleMixin, base), dict(console_log_level=level))
    return runner_cls.from_cfg(cfg)
