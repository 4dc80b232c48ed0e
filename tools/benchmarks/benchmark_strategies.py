"""Run the DDP and the FSDP training config on the same synthetic batches:
losses side by side, throughput and peak memory.

    torchrun --nproc_per_node 1 tools/benchmarks/benchmark_strategies.py \\
        [--iters 20] [--batch-size 512] [--out FILE]
    python tools/benchmarks/benchmark_strategies.py --tiny  # CPU check

Both configs (``configs/clip/clip_vit-base-p16_8xb512-amp-32e_cc3m.py``:
DDP with bf16 autocast; ``..._8xb512-amp-fsdp-32e_cc3m.py``: mmengine's
FlexibleRunner with ``FSDPStrategy``, bf16 parameters) train from the same
seeded initial weights on the same stream of batches (a seeded pool of
random images and captions, read in order), each through its own runner,
hooks and optim wrapper, for ``--iters`` iterations at a constant learning
rate. Reported per config: the loss at every iteration, samples/s over the
iterations after the first five (compilation and allocator warm-up), and on
CUDA ``torch.cuda.max_memory_allocated``. FSDP casts parameters to bf16
while autocast keeps LayerNorm and softmax in fp32, so the two loss curves
agree to about 1e-2, not bit for bit.

Without ``torchrun`` the script forms a process group of one (gloo on CPU,
NCCL on CUDA). ``--tiny`` swaps in a tiny model and 32px images and runs on
the CPU: what the test suite checks.
"""
import argparse
import contextlib
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from torch.utils.data import Dataset

from mmclip.registry import DATASETS

#: The two pretraining configs compared, by name (mmclip.apis.find_config).
CONFIGS = {
    'DDP': 'clip_vit-base-p16_8xb512-amp-32e_cc3m',
    'FSDP': 'clip_vit-base-p16_8xb512-amp-fsdp-32e_cc3m',
}
TINY_ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, proj_dims=32)


@DATASETS.register_module(force=True)  # force: the tests load it twice
class SyntheticImageText(Dataset):
    """Packed image-caption samples from a seeded pool: sample ``i`` is the
    pool's ``i % pool`` entry, so every run reads the same stream.

    Args:
        length (int): Samples in the dataset.
        img_size (int): Image side.
        pool (int): Distinct samples generated. Defaults to 64.
        seed (int): Generator seed. Defaults to 0.
    """

    def __init__(self, length: int, img_size: int, pool: int = 64,
                 seed: int = 0):
        from mmclip.models.tokenizers import CLIPBPETokenizer
        rng = np.random.default_rng(seed)
        self.length = length
        self.images = torch.from_numpy(
            rng.integers(0, 256, (pool, 3, img_size, img_size), np.uint8))
        words = ['red', 'car', 'dog', 'photo', 'street', 'small', 'cat']
        texts = [' '.join(rng.choice(words, 6)) for _ in range(pool)]
        self.text_ids = CLIPBPETokenizer()(texts)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        from mmpretrain.structures import DataSample
        i = index % len(self.images)
        sample = DataSample()
        sample.set_field(self.text_ids[i], 'text_ids')
        return dict(inputs=self.images[i], data_samples=sample)


class IterationTimer(Hook):
    """Times the iterations after the first ``warmup`` (compilation,
    allocator and cuDNN warm-up), waiting for the device only at the two
    ends, and resets the peak-memory counter before training.

    Args:
        warmup (int): Iterations left out of the timing.
    """
    priority = 'LOWEST'

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.marks: List[float] = []

    def before_train(self, runner) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 in (self.warmup, runner.max_iters):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.marks.append(time.perf_counter())


@contextlib.contextmanager
def process_group(device: str):
    """The ``torchrun`` process group, or else one of this process alone
    (its environment variables and the group removed again on exit)."""
    import torch.distributed as dist
    if dist.is_initialized():
        yield
        return
    env = dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=None)
    saved = {key: os.environ.get(key) for key in env}
    for key, value in env.items():
        os.environ.setdefault(key, value or str(free_port()))
    try:
        if device == 'cuda':
            torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
        dist.init_process_group('nccl' if device == 'cuda' else 'gloo')
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def build_config(name: str, args, work_dir: str,
                 init_weights: Optional[str] = None):
    """The config ``name`` set up for the comparison (synthetic data, fixed
    iterations and learning rate, no checkpoints or validation), starting
    from the weights in ``init_weights`` when given."""
    from mmengine.config import Config

    from mmclip.apis import find_config
    cfg = Config.fromfile(find_config(CONFIGS[name]))
    img_size = 32 if args.tiny else cfg.model.vision_backbone.get(
        'img_size', 224)
    if args.tiny:
        for tower in (cfg.model.vision_backbone, cfg.model.text_encoder):
            tower.arch = dict(TINY_ARCH)
        cfg.model.vision_backbone.update(img_size=32, patch_size=8)
    if init_weights:
        cfg.model.init_cfg = dict(type='Pretrained', checkpoint=init_weights)
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    cfg.train_dataloader = dict(
        batch_size=batch_size, num_workers=args.workers,
        collate_fn=dict(type='default_collate'),
        pin_memory=args.device == 'cuda',
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='SyntheticImageText',
                     length=batch_size * args.iters, img_size=img_size))
    cfg.train_cfg = dict(by_epoch=False, max_iters=args.iters)
    cfg.param_scheduler = None
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg.pop(key, None)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=10**9, save_last=False)
    # One log line at the end: every loss is still in the message hub,
    # and no step waits for the device to print one.
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=args.iters)
    cfg.custom_hooks = [h for h in cfg.custom_hooks
                        if h['type'] == 'LogitScaleClampHook']
    cfg.launcher = 'pytorch'
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    cfg.log_level = 'WARNING'
    if args.device == 'cpu':
        cfg.env_cfg.dist_cfg = dict(backend='gloo')
        if cfg.optim_wrapper.type.endswith('AmpOptimWrapper'):
            # bf16 autocast on CPU is ~300x slower without AVX-512.
            cfg.optim_wrapper.type = 'NonFiniteSkipOptimWrapper'
            cfg.optim_wrapper.pop('dtype')
        # The wrappers' default device is GPU LOCAL_RANK.
        if 'strategy' in cfg:
            cfg.strategy.model_wrapper.device_id = torch.device('cpu')
            cfg.strategy.model_wrapper.pop('mixed_precision')
        else:
            cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                         broadcast_buffers=False,
                                         device_ids=None)
    return cfg


def save_initial_weights(args, path: str) -> str:
    """Build the (DDP config's) model once and save its weights, so both
    runs start from the same tensors whatever order each runner draws its
    random numbers in."""
    from mmengine.registry import init_default_scope

    from mmclip.registry import MODELS
    init_default_scope('mmclip')
    torch.manual_seed(0)
    model = MODELS.build(build_config('DDP', args, '').model)
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def run_config(name: str, args, work_dir: str,
               init_weights: str) -> Dict[str, object]:
    """Train one config from ``init_weights``; returns its losses,
    samples/s and peak GiB."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    import mmclip.engine  # noqa: F401 (hooks, optim wrappers)
    cfg = build_config(name, args, work_dir, init_weights)
    timer = IterationTimer(warmup=min(5, args.iters - 1))
    runner = (RUNNERS.build(cfg) if 'runner_type' in cfg else
              Runner.from_cfg(cfg))
    runner.register_hook(timer, 'LOWEST')
    runner.train()
    samples = cfg.train_dataloader.batch_size * (args.iters - timer.warmup)
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    return dict(
        losses=[float(v) for v in losses],
        samples_per_s=samples / (timer.marks[-1] - timer.marks[0]),
        peak_gib=(torch.cuda.max_memory_allocated() / 2**30
                  if args.device == 'cuda' else None))


def format_report(results: Dict[str, dict], args) -> str:
    """Markdown: one summary row per config, then the loss curves."""
    ddp, fsdp = (np.array(results[k]['losses']) for k in ('DDP', 'FSDP'))
    gap = float(np.max(np.abs(ddp - fsdp) / np.abs(ddp)))
    lines = ['| config | samples/s | peak memory (GiB) | final loss |',
             '|---|---|---|---|']
    for name, res in results.items():
        mem = f'{res["peak_gib"]:.2f}' if res['peak_gib'] else 'n/a'
        lines.append(f'| {name} ({CONFIGS[name]}) | '
                     f'{res["samples_per_s"]:,.1f} | {mem} | '
                     f'{res["losses"][-1]:.4f} |')
    lines += ['', f'Largest relative loss difference over {args.iters} '
              f'iterations: {gap:.2e} (agree: {gap < args.tolerance}).', '',
              '| iteration | DDP loss | FSDP loss |', '|---|---|---|']
    lines += [f'| {i + 1} | {a:.4f} | {b:.4f} |'
              for i, (a, b) in enumerate(zip(ddp, fsdp))]
    return '\n'.join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--batch-size', type=int, default=None,
                   help="per process; default: the configs' (512)")
    p.add_argument('--workers', type=int, default=4)
    p.add_argument('--tolerance', type=float, default=2e-2,
                   help='largest relative loss difference that agrees')
    p.add_argument('--tiny', action='store_true',
                   help='tiny model on the CPU: checks the tool runs')
    p.add_argument('--out', default=None, help='also write the report here')
    args = p.parse_args(argv)
    if args.iters < 2:
        p.error('--iters must be at least 2 (one warm-up, one timed)')
    args.device = 'cpu' if args.tiny or not torch.cuda.is_available() \
        else 'cuda'
    if args.tiny:
        args.iters, args.batch_size, args.workers = 3, 4, 0
    return args


def run(args) -> Dict[str, dict]:
    """Train both configs as ``args`` say, print (and write) the report;
    returns ``{config name: its losses, samples/s and peak GiB}``."""
    import tempfile
    results = {}
    with process_group(args.device), \
            tempfile.TemporaryDirectory() as work_dir:
        weights = save_initial_weights(args, osp.join(work_dir, 'init.pth'))
        for name in CONFIGS:
            results[name] = run_config(name, args, osp.join(work_dir, name),
                                       weights)
    report = format_report(results, args)
    print(report)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(report + '\n')
    return results


def main(argv=None) -> int:
    from mmclip.apis.cli import run_tool
    return run_tool(run, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
