"""Multi-process runs on CPU as on GPU, without changing mmengine.

``torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch``
starts N processes; mmengine's Runner then calls ``init_dist``, which sets
one CUDA device per process (``torch.cuda.set_device``) and so dies on a
machine without a GPU, and wraps the model in
``MMDistributedDataParallel(device_ids=[LOCAL_RANK])``, which a CPU module
refuses. With CUDA, mmengine's path (NCCL, one GPU per process) is used
unchanged. Without CUDA, :func:`setup_distributed` prepares both steps
before the Runner is built:

- it starts the process group with the ``gloo`` backend from torchrun's
  environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``);
  ``Runner.setup_env`` skips ``init_dist`` when a group exists;
- it sets ``model_wrapper_cfg`` to ``MMDistributedDataParallel`` with
  ``device_ids=None`` (what DDP wants for a CPU module); the config's own
  DDP wrapper settings are kept.

Everything else (samplers that split the data by rank, the heads' feature
gathering, checkpoints written by rank 0) only needs the process group.
"""
import os
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

from .preflight import ConfigError

#: What torchrun (and ``python -m torch.distributed.launch``) set in every
#: process; ``--launcher pytorch`` reads them.
TORCHRUN_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
#: SLURM's variables that mmengine's ``--launcher slurm`` reads (srun).
SLURM_ENV = ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')


def check_launcher_env(launcher: str, how: Optional[str] = None) -> None:
    """Refuse a launcher whose processes were not started by its tool.

    ``--launcher pytorch`` without torchrun, or ``--launcher slurm``
    outside ``srun``, would otherwise fail inside mmengine with a
    ``KeyError`` naming an environment variable.

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        how (str, optional): How to start the processes, for the message.
            Defaults to None (tools/train.py's commands).

    Raises:
        ConfigError: Naming the missing variables and the command to use.
    """
    needed = {'pytorch': TORCHRUN_ENV, 'slurm': SLURM_ENV}.get(launcher, ())
    missing = [name for name in needed if name not in os.environ]
    if not missing:
        return
    how = how or (
        'start the processes with tools/dist_train.sh CONFIG N (or '
        'torchrun --nproc_per_node N tools/train.py CONFIG --launcher '
        'pytorch)' if launcher == 'pytorch' else
        'start it with tools/slurm_train.sh PARTITION JOB CONFIG '
        'WORK_DIR (srun)')
    raise ConfigError(
        f'--launcher {launcher} reads {", ".join(missing)} from the '
        f'environment, which is not set: {how}, or drop --launcher for one '
        'process.')


def setup_distributed(cfg: Config) -> None:
    """Prepare ``cfg`` and the process group for a multi-process run
    without CUDA (see the module docstring); a no-op for single-process
    runs, with CUDA, or when a process group already exists.

    Args:
        cfg (Config): A config from :func:`mmclip.apis.prepare_train_config`
            or :func:`mmclip.apis.prepare_test_config`; its ``launcher``,
            ``env_cfg.dist_cfg.timeout`` (seconds) and
            ``model_wrapper_cfg`` are read, ``model_wrapper_cfg`` is set.

    Raises:
        ConfigError: For ``--launcher slurm``/``mpi`` without CUDA (mmengine
            starts those with one GPU per process; use torchrun), for a
            launcher whose environment is missing, and for a
            non-DDP ``model_wrapper_cfg`` (e.g. FSDP), which needs GPUs.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none':
        return
    check_launcher_env(launcher)
    if torch.cuda.is_available():
        return  # mmengine's own path: NCCL, one GPU per process
    if launcher != 'pytorch':
        raise ConfigError(
            f'--launcher {launcher} needs CUDA GPUs (mmengine gives each '
            'process one); on CPU start the processes with torchrun and '
            '--launcher pytorch (tools/dist_train.sh CONFIG N).')
    _set_cpu_model_wrapper(cfg)
    if dist.is_initialized():
        return
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    kwargs = {}
    if dist_cfg.get('timeout') is not None:
        kwargs['timeout'] = timedelta(seconds=dist_cfg['timeout'])
    # init_method env:// reads torchrun's RANK, WORLD_SIZE, MASTER_ADDR/PORT.
    dist.init_process_group(backend='gloo', **kwargs)
    print_log(
        f'No CUDA device: process {dist.get_rank()} of '
        f'{dist.get_world_size()} joined a gloo process group on CPU.',
        logger='current')


def _set_cpu_model_wrapper(cfg: Config) -> None:
    """``MMDistributedDataParallel`` with ``device_ids=None``: DDP of a CPU
    module (mmengine's default passes ``[LOCAL_RANK]``, a CUDA device)."""
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,  # as mmengine's default wrapper
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        return
    from mmengine.registry import MODEL_WRAPPERS
    wrapper_type = wrapper.get('type', 'MMDistributedDataParallel')
    wrapper_cls = (MODEL_WRAPPERS.get(wrapper_type)
                   if isinstance(wrapper_type, str) else wrapper_type)
    if not (isinstance(wrapper_cls, type) and issubclass(
            wrapper_cls, torch.nn.parallel.DistributedDataParallel)):
        raise ConfigError(
            f'model_wrapper_cfg type {wrapper_type!r} needs CUDA GPUs; '
            'multi-process runs on CPU use MMDistributedDataParallel.')
    wrapper['device_ids'] = None
