"""The heads under data parallelism: gloo on CPU, 2 and 4 processes.

A tiny two-tower model (one ``nn.Linear`` per modality, a ``logit_scale``
and the head's own parameters) is built with the same seed on every rank;
rank ``r`` gets its slice of a fixed global batch, computes the head's loss,
backpropagates, and averages every gradient over ranks as DDP does. The
averaged gradients, the mean of the rank losses and of the rank accuracies
must equal those of one process on the whole batch. Also checked: the
modes of ``CLIPContrastiveHead`` that do not match (as documented there),
the ring exchange helpers' values and gradients, and the error on uneven
local batch sizes. One spawn of 4 processes (imports dominate the run time),
then ranks 0-1 regroup for a 2-process run.
"""
import math
import os
import socket
import tempfile
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from mmclip.models.heads import CLIPContrastiveHead, SigLIPHead

GLOBAL_BATCH = 8
TOL = 1e-6
TIMEOUT_S = 120  # whole spawn; each collective also times out (gloo)
# 4 ranks: the ring's bidirectional round, pass-on and odd remainder; then
# ranks 0-1 regroup for 2 (remainder only; the common case).
WORLD_SIZES = (4, 2)
CASES = {
    'clip': (CLIPContrastiveHead, dict()),
    'clip_global_grad': (CLIPContrastiveHead, dict(local_loss=False)),
    'clip_global_nograd': (CLIPContrastiveHead,
                           dict(local_loss=False, gather_with_grad=False)),
    'clip_local_nograd': (CLIPContrastiveHead, dict(gather_with_grad=False)),
    'siglip_gather': (SigLIPHead, dict(init_logit_bias=-2.)),
    'siglip_ring': (SigLIPHead,
                    dict(init_logit_bias=-2., dist_impl='neighbour_exchange')),
}
# The same under torch's DistributedDataParallel (its bucketed all-reduce runs
# during the backward, interleaved with the heads' own collectives).
DDP_CASES = ['clip', 'siglip_ring']
CASES.update({f'{name}_ddp': CASES[name] for name in DDP_CASES})
# Modes whose DDP-averaged gradients equal the single-process ones.
EXACT = ['clip', 'clip_global_grad', 'siglip_gather', 'siglip_ring'] + [
    f'{name}_ddp' for name in DDP_CASES
]


class TinyCLIP(nn.Module):

    def __init__(self, head: nn.Module):
        super().__init__()
        self.img_enc = nn.Linear(6, 4)
        self.txt_enc = nn.Linear(6, 4)
        with torch.no_grad():
            # Related towers (and inputs, below), so that in-batch retrieval
            # is partly right: the accuracies are informative.
            self.txt_enc.weight.copy_(self.img_enc.weight +
                                      0.3 * torch.randn(4, 6))
            self.txt_enc.bias.copy_(self.img_enc.bias)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.)))
        self.head = head

    def forward(self, images, texts):
        img = F.normalize(self.img_enc(images), dim=-1)
        txt = F.normalize(self.txt_enc(texts), dim=-1)
        return self.head.loss(img, txt, self.logit_scale)


def run_case(name: str, rank: int = 0, world_size: int = 1) -> dict:
    """Loss, metrics and parameter gradients of this rank's batch slice."""
    head_cls, kwargs = CASES[name]
    torch.manual_seed(0)  # same weights on every rank
    net = TinyCLIP(head_cls(**kwargs)).double()
    model = net
    if name.endswith('_ddp') and world_size > 1:
        model = nn.parallel.DistributedDataParallel(net)
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(GLOBAL_BATCH, 6, generator=gen, dtype=torch.float64)
    texts = images + 0.3 * torch.randn(
        GLOBAL_BATCH, 6, generator=gen, dtype=torch.float64)
    rows = slice(rank * GLOBAL_BATCH // world_size,
                 (rank + 1) * GLOBAL_BATCH // world_size)
    out = model(images[rows], texts[rows])
    out['loss'].backward()
    result = {k: v.detach().double() for k, v in out.items()}
    for pname, param in net.named_parameters():
        result['grad.' + pname] = param.grad.clone()
    return result


def exchange_errors(rank: int, world_size: int) -> torch.Tensor:
    """Max error of the ring helpers' values and gradients on this rank."""
    from mmclip.models.utils.dist import (neighbour_exchange,
                                          neighbour_exchange_bidir)
    left, right = (rank - 1) % world_size, (rank + 1) % world_size

    def tagged(tag):  # a value that says who sent it and which way
        return torch.full((2, 3), 10. * rank + tag, dtype=torch.float64,
                          requires_grad=True)

    to_left, to_right = tagged(1), tagged(2)
    from_left, from_right = neighbour_exchange_bidir(to_left, to_right)
    shifted = neighbour_exchange(to_right)
    # Weights that say who received what, sent back by the backward.
    ((rank + 1) * from_left.sum() + 100 * (rank + 1) * from_right.sum() +
     1000 * (rank + 1) * shifted.sum()).backward()
    expected = [(from_left, 10. * left + 2), (from_right, 10. * right + 1),
                (shifted, 10. * left + 2),
                (to_left.grad, 100. * (left + 1)),
                (to_right.grad, 1001. * (right + 1))]
    return torch.stack([(t - v).abs().max() for t, v in expected]).max()


def raises_on_uneven_batches(rank: int) -> torch.Tensor:
    """How many heads refuse local batches of different sizes (of 3)."""
    feats = F.normalize(torch.ones(2 + rank, 4), dim=-1)
    raised = 0
    for head in (CLIPContrastiveHead(), SigLIPHead(),
                 SigLIPHead(dist_impl='neighbour_exchange')):
        try:
            head.loss(feats, feats, torch.tensor(1.))
        except ValueError as err:
            raised += 'differ across ranks' in str(err)
    return torch.tensor(float(raised))


def _worker(rank: int, runs: list, path: str):
    """Run every case in each ``(world_size, port)`` of ``runs`` in turn; the
    interpreter (and its slow imports) is reused, the spare ranks leave."""
    os.environ['GLOO_SOCKET_IFNAME'] = 'lo'  # loopback only
    torch.set_num_threads(1)
    all_results = {}
    for world_size, port in runs:
        if rank >= world_size:
            return
        dist.init_process_group(
            'gloo',
            init_method=f'tcp://127.0.0.1:{port}',
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=60))
        try:
            results = {}
            for name in CASES:
                result = run_case(name, rank, world_size)
                for key, value in result.items():
                    if name.endswith('_ddp') and key.startswith('grad.'):
                        continue  # DDP averaged them (rank 0's are saved)
                    # Gradients: what DDP does; losses and metrics: mean.
                    dist.all_reduce(value)
                    value /= world_size
                results[name] = result
            err = exchange_errors(rank, world_size).detach()
            dist.all_reduce(err, op=dist.ReduceOp.MAX)
            raised = raises_on_uneven_batches(rank)
            dist.all_reduce(raised, op=dist.ReduceOp.MIN)
            results['checks'] = dict(max_err=err, uneven_raised=raised)
            all_results[world_size] = results
            dist.barrier()
        finally:
            dist.destroy_process_group()
    if rank == 0:
        torch.save(all_results, path)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def spawn(world_sizes=WORLD_SIZES) -> dict:
    """``{world_size: {case: rank-averaged result}}`` of one spawn."""
    runs = [(w, _free_loopback_port()) for w in world_sizes]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'results.pth')
        ctx = mp.start_processes(
            _worker,
            args=(runs, path),
            nprocs=max(world_sizes),
            join=False,
            start_method='spawn')
        deadline = time.monotonic() + TIMEOUT_S
        try:
            # join() raises (and stops the others) if a worker fails.
            while not ctx.join(timeout=0.5):
                if time.monotonic() > deadline:
                    raise TimeoutError(f'gloo runs exceeded {TIMEOUT_S}s')
        finally:
            for proc in ctx.processes:
                if proc.is_alive():
                    proc.terminate()
                    proc.join(5)
        return torch.load(path)


@pytest.fixture(scope='module')
def all_runs():
    return spawn()


@pytest.fixture(params=WORLD_SIZES, ids=lambda w: f'world{w}')
def distributed(request, all_runs):
    return request.param, all_runs[request.param]


@pytest.fixture(scope='module')
def single():
    with pytest.warns(UserWarning):  # clip_local_nograd's construction
        return {name: run_case(name) for name in CASES}


def max_diff(a: dict, b: dict, keys=None) -> float:
    keys = a.keys() if keys is None else keys
    return max((a[k] - b[k]).abs().max().item() for k in keys)


def grad_keys(result: dict, towers_only: bool = False) -> list:
    return [
        k for k in result if k.startswith('grad.') and not (
            towers_only and 'enc' not in k)
    ]


@pytest.mark.parametrize('name', EXACT)
def test_matches_single_process(distributed, single, name):
    world_size, results = distributed
    got, ref = results[name], single[name]
    assert set(got) == set(ref)
    assert len(grad_keys(ref)) == (6 if 'siglip' in name else 5)
    print(f'{name} world {world_size}: max |diff| loss '
          f'{max_diff(got, ref, ["loss"]):.2e}, grads '
          f'{max_diff(got, ref, grad_keys(ref)):.2e}')
    # Loss and accuracies: mean over ranks == the single-process value.
    for key, value in ref.items():
        assert (got[key] - value).abs().max().item() < TOL, key
    # Guard against a vacuous comparison.
    assert min(ref[k].abs().max().item() for k in grad_keys(ref)) > 1e-3
    assert (ref['i2t_acc'].item(), ref['t2i_acc'].item()) == (50., 75.)


def test_global_loss_without_grad_shrinks_tower_grads(distributed, single):
    world_size, results = distributed
    got, ref = results['clip_global_nograd'], single['clip_global_nograd']
    assert max_diff(got, ref, ['loss', 'i2t_acc', 't2i_acc']) < TOL
    # logit_scale sees the full loss on every rank: exact.
    assert max_diff(got, ref, ['grad.logit_scale']) < TOL
    # The towers only get their local slice's share.
    towers = grad_keys(ref, towers_only=True)
    scaled = {k: got[k] * world_size for k in towers}
    assert max_diff(scaled, ref, towers) < TOL


def test_local_loss_without_grad_is_wrong(distributed, single):
    _, results = distributed
    got, ref = results['clip_local_nograd'], single['clip_local_nograd']
    assert max_diff(got, ref, ['loss']) < TOL  # the value is right ...
    towers = grad_keys(ref, towers_only=True)
    assert max_diff(got, ref, towers) > 1e-3  # ... its gradients are not


def test_ring_exchange_values_and_gradients(distributed):
    _, results = distributed
    assert results['checks']['max_err'].item() == 0


def test_uneven_batches_raise(distributed):
    _, results = distributed
    assert results['checks']['uneven_raised'].item() == 3
