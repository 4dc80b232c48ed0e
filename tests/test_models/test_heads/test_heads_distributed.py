"""The heads under data parallelism: gloo on CPU, 2 and 4 processes.

A tiny two-tower model (one ``nn.Linear`` per modality, a ``logit_scale``
and the head's own parameters) is built with the same seed on every rank;
rank ``r`` gets its slice of a fixed global batch, computes the head's loss,
backpropagates, and averages every gradient over ranks as DDP does. The
averaged gradients, the mean of the rank losses and of the rank accuracies
must equal those of one process on the whole batch (SigLIP's ring logs
in-batch accuracies of the local pairs instead: compared with one process
on each rank's slice). Also checked: the modes of ``CLIPContrastiveHead``
that do not match (as documented there), the ring exchange helpers' values
and gradients, the error on uneven local batch sizes, that the ring never
all-gathers, and that ``ZeroShotClsHead`` splits the classifier build across
ranks, reads and writes its cache on rank 0 only and gives every rank the
one-process weights. One spawn of 4 processes (imports dominate the run
time), then ranks 0-1 regroup for a 2-process run.
"""
import contextlib
import math
import os
import tempfile
from datetime import timedelta
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from conftest import free_loopback_port, run_spawned
from mmclip.models.heads import CLIPContrastiveHead, SigLIPHead

# Spawns process groups of 4 and 2 ranks once for the module (~20 s).
pytestmark = pytest.mark.slow
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
METRICS = ('i2t_acc', 't2i_acc')
# Every all-gather flavour of torch.distributed (mmengine's and the
# differentiable one of torch.distributed.nn call these).
GATHERS = ('all_gather', 'all_gather_into_tensor', '_all_gather_base',
           'all_gather_object')
ZERO_SHOT_CLASSES = [f'class {i}' for i in range(7)]  # 7: uneven shares
ZERO_SHOT_TEMPLATES = ['a photo of a {}.', 'a {}', 'art of the {}']


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


def count_gathers(name: str, rank: int, world_size: int) -> int:
    """All-gathers made by one loss and backward of case ``name``."""
    with contextlib.ExitStack() as stack:
        mocks = [
            stack.enter_context(
                mock.patch.object(dist, fn, wraps=getattr(dist, fn)))
            for fn in GATHERS if hasattr(dist, fn)
        ]
        run_case(name, rank, world_size)
    return sum(m.call_count for m in mocks)


def tiny_clip_model():
    import mmclip.models  # noqa: F401
    from conftest import tiny_clip_config
    from mmclip.registry import MODELS
    torch.manual_seed(0)  # same weights on every rank
    return MODELS.build(tiny_clip_config()).eval()


def zero_shot_results(rank: int, cache_root: str) -> dict:
    """Classifier built and then read back from the cache, the prompts this
    rank embedded for each, and the cache files of this rank's folder (one
    folder per rank, as on nodes without a shared disk)."""
    from mmclip.models.heads import ZeroShotClsHead
    from mmclip.models.utils import TextEmbedder
    model = tiny_clip_model()
    embedded = []
    embedder = model.text_embedder()
    counting = TextEmbedder(
        lambda texts: embedded.append(len(texts)) or embedder(texts),
        embedder.fingerprint)
    cache = os.path.join(cache_root, f'rank{rank}')
    out = {}
    for step in ('built', 'cached'):  # a fresh head each: no memory copy
        head = ZeroShotClsHead(ZERO_SHOT_CLASSES, ZERO_SHOT_TEMPLATES,
                               cache_dir=cache, batch_size=5)
        out[step] = head.get_classifier(counting)
        out[f'{step}_prompts'] = sum(embedded)
        embedded.clear()
    out['files'] = len(os.listdir(cache)) if os.path.isdir(cache) else 0
    return out


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
            gathers = torch.tensor([
                float(count_gathers(name, rank, world_size))
                for name in ('siglip_ring', 'siglip_gather')
            ])
            dist.all_reduce(gathers, op=dist.ReduceOp.MAX)
            results['checks'] = dict(max_err=err, uneven_raised=raised,
                                     ring_gathers=gathers[0],
                                     gather_gathers=gathers[1])
            all_results[world_size] = results
            torch.save(
                zero_shot_results(rank, f'{path}.cache{world_size}'),
                f'{path}.zero_shot{world_size}.{rank}')
            dist.barrier()
        finally:
            dist.destroy_process_group()
    if rank == 0:
        torch.save(all_results, path)


def spawn(world_sizes=WORLD_SIZES) -> dict:
    """``{world_size: {case: rank-averaged result}}`` of one spawn."""
    runs = [(w, free_loopback_port()) for w in world_sizes]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'results.pth')
        run_spawned(_worker, (runs, path), max(world_sizes), TIMEOUT_S)
        results = torch.load(path)
        for world_size in world_sizes:
            results[world_size]['zero_shot'] = [
                torch.load(f'{path}.zero_shot{world_size}.{r}')
                for r in range(world_size)
            ]
        return results


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


def local_metrics(name: str, world_size: int) -> dict:
    """Rank-averaged accuracies when every rank scores only its own pairs:
    one process on each rank's slice of the batch."""
    base = name[:-len('_ddp')] if name.endswith('_ddp') else name
    runs = [run_case(base, r, world_size) for r in range(world_size)]
    return {k: sum(run[k] for run in runs) / world_size for k in METRICS}


@pytest.mark.parametrize('name', EXACT)
def test_matches_single_process(distributed, single, name):
    world_size, results = distributed
    got, ref = results[name], single[name]
    assert set(got) == set(ref)
    assert len(grad_keys(ref)) == (6 if 'siglip' in name else 5)
    print(f'{name} world {world_size}: max |diff| loss '
          f'{max_diff(got, ref, ["loss"]):.2e}, grads '
          f'{max_diff(got, ref, grad_keys(ref)):.2e}')
    # Loss and gradients: mean over ranks == the single-process value.
    if 'ring' in name:  # the accuracies of the local pairs (see SigLIPHead)
        ref = dict(ref, **local_metrics(name, world_size))
        assert max_diff(ref, single[name], METRICS) > 1  # not the global ones
    for key, value in ref.items():
        assert (got[key] - value).abs().max().item() < TOL, key
    # Guard against a vacuous comparison.
    assert min(ref[k].abs().max().item() for k in grad_keys(ref)) > 1e-3
    assert (single[name]['i2t_acc'].item(),
            single[name]['t2i_acc'].item()) == (50., 75.)


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


def test_ring_never_all_gathers(distributed):
    """SigLIP's neighbour exchange exists to avoid the all-gathers; its
    metrics must not bring them back (the gather mode makes some, so the
    count is not vacuous)."""
    _, results = distributed
    assert results['checks']['ring_gathers'].item() == 0
    assert results['checks']['gather_gathers'].item() >= 2


@pytest.fixture(scope='module')
def zero_shot_reference():
    from mmclip.models.utils import build_zero_shot_classifier
    model = tiny_clip_model()
    return build_zero_shot_classifier(model.text_embedder(),
                                      ZERO_SHOT_CLASSES, ZERO_SHOT_TEMPLATES)


def test_zero_shot_classifier_split_across_ranks(distributed,
                                                 zero_shot_reference):
    world_size, results = distributed
    ranks = results['zero_shot']
    share = math.ceil(len(ZERO_SHOT_CLASSES) / world_size)
    for rank, out in enumerate(ranks):
        # Every rank: the one-process weights, built from and then read back
        # through rank 0's cache.
        for step in ('built', 'cached'):
            torch.testing.assert_close(out[step], zero_shot_reference,
                                       atol=1e-6, rtol=0)
        torch.testing.assert_close(out['cached'], ranks[0]['cached'],
                                   atol=0, rtol=0)
        # Each rank embedded its share of the prompts, not all of them ...
        assert out['built_prompts'] == share * len(ZERO_SHOT_TEMPLATES)
        # ... and none on the cache hit, though only rank 0 has the file.
        assert out['cached_prompts'] == 0
        assert out['files'] == (1 if rank == 0 else 0)
