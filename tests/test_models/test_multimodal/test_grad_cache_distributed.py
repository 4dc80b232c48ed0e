"""Gradient accumulation under data parallelism: 2 gloo processes x 4
micro-batches x 4 against one process on the whole batch of 32.

Each rank trains the tiny CLIP (float64, as ``test_grad_cache.py``)
wrapped in mmclip's accumulating DDP or FSDP wrapper for two AdamW steps
on its half of every global batch. The mean of the rank losses, DDP's
averaged gradients and the weights after both steps must equal one
process's on the whole batch (the heads gather the global batch of
2 x 4 x 4; only the last micro-batch's backward all-reduces).
"""
import os
import tempfile
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
from test_grad_cache import BATCH, STEPS, build, double_batch, recording

from conftest import free_loopback_port, run_spawned

# One spawn of 2 processes for the module (~40 s, imports included).
pytestmark = pytest.mark.slow
WORLD_SIZE, K = 2, 4
TOL = 1e-6
TIMEOUT_S = 240
CASES = {
    'ddp_clip': ('ddp', 'CLIPContrastiveHead'),
    'ddp_siglip': ('ddp', 'SigLIPHead'),
    'ddp_siglip_ring': ('ddp', dict(type='SigLIPHead',
                                    dist_impl='neighbour_exchange')),
    'fsdp_clip': ('fsdp', 'CLIPContrastiveHead'),
}


def wrap(model, kind: str, min_num_params: int = 2000):
    """The accumulating DDP or FSDP wrapper around ``model``; FSDP with a
    unit per layer of ``min_num_params`` or more (nested), as real configs
    shard."""
    import functools

    from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy

    from mmclip.models import (AccumulatingDistributedDataParallel,
                               AccumulatingFullyShardedDataParallel)
    if kind == 'ddp':
        return AccumulatingDistributedDataParallel(
            module=model, device_ids=None, broadcast_buffers=False)
    return AccumulatingFullyShardedDataParallel(
        module=model, device_id=torch.device('cpu'), use_orig_params=True,
        auto_wrap_policy=functools.partial(size_based_auto_wrap_policy,
                                           min_num_params=min_num_params))


def full_weights(net, model, kind: str) -> dict:
    """Every parameter, unsharded, by the model's own names."""
    if kind == 'ddp':
        return {n: p.detach().clone() for n, p in model.named_parameters()}
    from torch.distributed.fsdp import FullyShardedDataParallel
    with FullyShardedDataParallel.summon_full_params(net):
        return {
            n.replace('_fsdp_wrapped_module.', ''): p.detach().clone()
            for n, p in model.named_parameters()}


def run_case(name: str, rank: int) -> dict:
    kind, head = CASES[name]
    model = build(K, head, nonscalar_logit_scale=True)  # FSDP refuses 0-d
    net = wrap(model, kind)
    wrapper = recording(net)
    rows = slice(rank * BATCH // WORLD_SIZE, (rank + 1) * BATCH // WORLD_SIZE)
    losses = []
    for step in range(STEPS):
        data = double_batch(step)
        data = dict(inputs=data['inputs'][rows],
                    data_samples=data['data_samples'][rows])
        losses.append(net.train_step(data, wrapper)['loss'].detach())
    loss = torch.stack(losses)
    dist.all_reduce(loss)
    prefix = 'module.'
    return dict(
        loss=loss / WORLD_SIZE,
        grads=({n[len(prefix):]: g for n, g in wrapper.grads[0].items()}
               if kind == 'ddp' else None),
        weights=full_weights(net, model, kind))


def _worker(rank: int, port: int, path: str):
    os.environ['GLOO_SOCKET_IFNAME'] = 'lo'  # loopback only
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
        world_size=WORLD_SIZE, timeout=timedelta(seconds=60))
    try:
        results = {name: run_case(name, rank) for name in CASES}
        if rank == 0:
            torch.save(results, path)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope='module')
def distributed():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'results.pth')
        run_spawned(_worker, (free_loopback_port(), path), WORLD_SIZE,
                    TIMEOUT_S)
        return torch.load(path)


def one_process(head: str) -> dict:
    """One process, the whole batch in one pass."""
    model = build(1, head)
    wrapper = recording(model)
    losses = [model.train_step(double_batch(s), wrapper)['loss'].detach()
              for s in range(STEPS)]
    return dict(loss=torch.stack(losses), grads=wrapper.grads[0],
                weights={n: p.detach() for n, p in model.named_parameters()})


@pytest.mark.parametrize('name', list(CASES))
def test_two_processes_accumulating_equal_one_batch(distributed, name):
    got, ref = distributed[name], one_process(CASES[name][1])
    assert (got['loss'] - ref['loss']).abs().max().item() <= TOL
    if got['grads'] is not None:  # DDP's averaged gradients
        assert got['grads'].keys() == ref['grads'].keys()
        for param, grad in ref['grads'].items():
            diff = (got['grads'][param].reshape(grad.shape) - grad).abs()
            assert diff.max().item() <= TOL, param
    assert got['weights'].keys() == ref['weights'].keys()
    for param, value in ref['weights'].items():
        diff = (got['weights'][param].reshape(value.shape) - value).abs()
        assert diff.max().item() <= TOL, param
    # Not vacuous: the steps moved the weights.
    start = build(1, CASES[name][1]).backbone.proj
    assert (ref['weights']['backbone.proj'] - start).abs().max() > 1e-4
