"""Shared fixtures: tiny tower configs (fast), the repo root and a copy of
its source tree."""
import os
import os.path as osp
import uuid

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_VISION = dict(embed_dims=64, num_layers=2, num_heads=4, proj_dims=32)
TINY_TEXT = dict(embed_dims=48, num_layers=2, num_heads=4, proj_dims=32)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_clip_cfg():
    """Config of a tiny CLIPModel (random weights, builds in milliseconds)."""
    return tiny_clip_config()


def tiny_clip_config() -> dict:
    """:func:`tiny_clip_cfg` for code that cannot take fixtures (spawned
    processes)."""
    return dict(
        type='CLIPModel',
        vision_backbone=dict(
            type='CLIPVisionTransformer', arch=dict(TINY_VISION),
            img_size=32, patch_size=8),
        text_encoder=dict(type='CLIPTextTransformer', arch=dict(TINY_TEXT)),
        tokenizer=dict(type='CLIPBPETokenizer'))


def markdown_blocks(page: str, language: str) -> list:
    """The ``language`` fenced code blocks of a markdown file, dedented
    (blocks inside list items are indented with their item)."""
    import re
    import textwrap
    with open(page) as f:
        return [textwrap.dedent(block) for block in re.findall(
            rf'```{language}\n(.*?)```', f.read(), re.S)]


def copy_source_tree(dest: str) -> list:
    """Copy the files git would commit (tracked, and untracked but not
    ignored) to ``dest``, as a source distribution would hold them, so
    that building or installing the copy writes nothing into the checkout.

    Returns:
        list[str]: The copied paths, relative to the repository root.
    """
    import shutil
    import subprocess
    out = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others',
         '--exclude-standard'],
        cwd=REPO_ROOT, capture_output=True, check=True).stdout
    files = [p for p in out.decode().split('\0')
             if p and osp.isfile(osp.join(REPO_ROOT, p))]
    for rel in files:
        os.makedirs(osp.join(dest, osp.dirname(rel)), exist_ok=True)
        shutil.copy2(osp.join(REPO_ROOT, rel), osp.join(dest, rel))
    return files


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a process
    group's rendezvous)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_spawned(worker, args: tuple, nprocs: int, timeout_s: float) -> None:
    """``worker(rank, *args)`` in ``nprocs`` spawned processes (multi-process
    tests). A failing worker raises here and stops the others; so does a
    run longer than ``timeout_s``."""
    import time

    import torch.multiprocessing as mp
    ctx = mp.start_processes(worker, args=args, nprocs=nprocs, join=False,
                             start_method='spawn')
    deadline = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=0.5):
            if time.monotonic() > deadline:
                raise TimeoutError(f'spawned processes exceeded {timeout_s}s')
    finally:
        for proc in ctx.processes:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def load_tool(relpath: str):
    """Import a script under ``tools/`` as a module (tools are not a
    package)."""
    import importlib.util
    path = osp.join(REPO_ROOT, 'tools', relpath)
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.splitext(osp.basename(relpath))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def mm_log(monkeypatch):
    """Messages logged through any of mmengine's MMLoggers during a test,
    those a tool or runner creates on the way included (MMLogger does not
    propagate to pytest's caplog)."""
    from mmengine.logging import MMLogger
    messages = []
    call_handlers = MMLogger.callHandlers

    def collect(self, record):
        messages.append(record.getMessage())
        call_handlers(self, record)

    monkeypatch.setattr(MMLogger, 'callHandlers', collect)
    yield messages


class RandomImageTextPairs(torch.utils.data.Dataset):
    """24 packed samples, the same on every run: a random 32px uint8 image
    and a 5-token caption each (what ``PackImageText`` gives the model)."""

    def __len__(self):
        return 24

    def __getitem__(self, i):
        from mmpretrain.structures import DataSample
        g = torch.Generator().manual_seed(i)
        ids = torch.zeros(77, dtype=torch.long)
        ids[0], ids[1:4], ids[4] = 49406, torch.randint(
            1, 400, (3, ), generator=g), 49407
        sample = DataSample()
        sample.set_field(ids, 'text_ids')
        return dict(inputs=torch.randint(0, 256, (3, 32, 32), generator=g,
                                         dtype=torch.uint8),
                    data_samples=sample)


def tiny_training_config(work_dir: str, iters: int, **overrides):
    """Config of :func:`tiny_clip_config` with CLIP's loss trained by
    mmengine's ``Runner`` on :class:`RandomImageTextPairs` (4 a batch,
    stacked, in order), AdamW, seed 0, no checkpoints; ``overrides`` are
    merged in (e.g. ``compile=...``, ``default_hooks=...``)."""
    from mmengine.config import Config

    from mmclip.registry import DATASETS
    DATASETS.register_module(module=RandomImageTextPairs, force=True)
    cfg = Config(dict(
        model=dict(tiny_clip_config(), head=dict(type='CLIPContrastiveHead')),
        work_dir=work_dir, default_scope='mmclip',
        train_dataloader=dict(
            batch_size=4, num_workers=0,
            collate_fn=dict(type='default_collate'),
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='RandomImageTextPairs')),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=1000,
                            by_epoch=False, save_last=False)),
        randomness=dict(seed=0), log_level='WARNING',
        # Runners built in the same second would otherwise share one
        # message hub (mmengine names instances by the timestamp).
        experiment_name=f'tiny_{uuid.uuid4().hex}'))
    cfg.merge_from_dict(overrides)
    return cfg
