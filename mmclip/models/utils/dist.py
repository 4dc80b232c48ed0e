"""Distributed helpers shared by the contrastive training heads.

Every helper here assumes the same local batch size on every rank: collectives
allocate their receive buffers from the local tensor's shape. mmengine's
``DefaultSampler`` (``round_up=True``) and ``InfiniteSampler`` guarantee it
(they pad the dataset to a multiple of the world size); a sampler that gives
ranks different last batches must drop that batch. :func:`check_batch_sizes`
turns a violation into a clear error.

Two ways to move features between ranks carry gradients back to their owner:

* :func:`all_gather_with_grad` wraps ``torch.distributed.nn.all_gather``;
  its backward sums, over all ranks, the gradients of the gathered copies and
  hands each rank the sum for its own slice (reduce-scatter). Plain
  ``torch.distributed.all_gather`` has no backward: it silently cuts the
  graph.
* :func:`neighbour_exchange` / :func:`neighbour_exchange_bidir` send tensors
  around a ring with point-to-point ops; their backward sends the gradients
  back the way the tensors came (one autograd function, ``_RingShift``,
  serves both directions).

Rank, world size and the plain (gradient-free) collectives are mmengine's
(``mmengine.dist``), which also handle the backend's device.
"""
import warnings
from typing import Tuple

import torch
import torch.distributed as dist
from mmengine.dist import all_gather, all_reduce, get_dist_info
from torch import Tensor

try:
    import torch.distributed.nn as dist_nn
except ImportError:  # torch built without distributed support
    dist_nn = None

__all__ = [
    'check_batch_sizes', 'all_gather_with_grad', 'all_gather_no_grad',
    'gather_features', 'neighbour_exchange', 'neighbour_exchange_bidir',
    'top1_accuracy'
]


def check_batch_sizes(tensor: Tensor, group=None) -> None:
    """Raise ``ValueError`` unless ``tensor.shape[0]`` is equal on all ranks.

    Collectives on tensors of different sizes abort (gloo), hang or return
    garbage, so a mismatch is caught first. Costs one all-reduce of two
    integers and a host sync; every rank raises the same error.

    Args:
        tensor (Tensor): The local batch, ``(B, ...)``.
        group (ProcessGroup, optional): Defaults to the default group.
    """
    if get_dist_info(group)[1] == 1:
        return
    # max(B) and -min(B) in one reduction.
    extremes = torch.tensor([tensor.shape[0], -tensor.shape[0]],
                            device=tensor.device)
    all_reduce(extremes, op='max', group=group)
    largest, smallest = int(extremes[0]), -int(extremes[1])
    if largest != smallest:
        raise ValueError(
            f'Local batch sizes differ across ranks (from {smallest} to '
            f'{largest}). The gathered contrastive losses need the same '
            "batch size on every rank: use mmengine's DefaultSampler "
            '(round_up=True) or InfiniteSampler, or drop the last incomplete '
            'batch.')


def all_gather_with_grad(tensor: Tensor, group=None) -> Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, keeping autograd.

    The backward of each rank's gathered copy reaches the rank that owns the
    slice, summed over ranks, so a loss computed from the gathered tensor on
    every rank yields the gradient of the *sum* of those losses. (mmengine's
    ``all_gather`` has no backward.)

    Args:
        tensor (Tensor): ``(B, ...)``; ``B`` equal on all ranks.
        group (ProcessGroup, optional): Defaults to the default group.

    Returns:
        Tensor: ``(world_size * B, ...)``, rank ``r``'s rows at
        ``[r * B, (r + 1) * B)``.
    """
    if get_dist_info(group)[1] == 1:
        return tensor
    kwargs = {} if group is None else dict(group=group)
    with warnings.catch_warnings():
        # Recent torch marks it deprecated in favour of a private
        # ``_functional_collectives`` API; it remains the public
        # differentiable gather (open_clip's too), so keep logs clean.
        warnings.simplefilter('ignore', FutureWarning)
        gathered = dist_nn.all_gather(tensor, **kwargs)
    return torch.cat(gathered, dim=0)


def all_gather_no_grad(tensor: Tensor,
                       keep_local_grad: bool = True,
                       group=None) -> Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0 without autograd.

    Args:
        tensor (Tensor): ``(B, ...)``; ``B`` equal on all ranks.
        keep_local_grad (bool): Put the local ``tensor`` itself (with its
            graph) in this rank's slice, so at least the local contribution
            reaches the local features. Defaults to True.
        group (ProcessGroup, optional): Defaults to the default group.

    Returns:
        Tensor: ``(world_size * B, ...)``.
    """
    rank, world_size = get_dist_info(group)
    if world_size == 1:
        return tensor if keep_local_grad else tensor.detach()
    parts = all_gather(tensor.detach().contiguous(), group)
    if keep_local_grad:
        parts[rank] = tensor
    return torch.cat(parts, dim=0)


def gather_features(img_feats: Tensor,
                    txt_feats: Tensor,
                    gather_with_grad: bool = True,
                    group=None) -> Tuple[Tensor, Tensor]:
    """Gather image and text features of the global batch.

    Args:
        img_feats (Tensor): Local image features ``(B, D)``.
        txt_feats (Tensor): Local text features ``(B, D)``.
        gather_with_grad (bool): Use :func:`all_gather_with_grad`; otherwise
            :func:`all_gather_no_grad` with the local slice kept in the graph
            (unlike open_clip, which keeps it only without ``local_loss``).
            Defaults to True.
        group (ProcessGroup, optional): Defaults to the default group.

    Returns:
        tuple[Tensor, Tensor]: Global image and text features, each
        ``(world_size * B, D)``, ordered by rank.
    """
    if gather_with_grad:
        return (all_gather_with_grad(img_feats, group),
                all_gather_with_grad(txt_feats, group))
    return (all_gather_no_grad(img_feats, group=group),
            all_gather_no_grad(txt_feats, group=group))


def _ring_peer(step: int, group) -> int:
    """Global rank of the group member ``step`` places along the ring (P2P
    ops take global ranks)."""
    rank, world_size = get_dist_info(group)
    peer = (rank + step) % world_size
    return peer if group is None else dist.get_global_rank(group, peer)


class _RingShift(torch.autograd.Function):
    """Send ``tensors[i]`` ``steps[i]`` places along the ring (+1: to the
    right neighbour, -1: to the left) and return what arrives from the
    opposite side, one tensor per step.

    The backward is the same shift with the steps negated: the gradient of
    what arrived from rank ``r - s`` goes back to it, and the gradient of
    what we sent to rank ``r + s`` comes back from there.

    All sends and receives are posted in one batch, in the order of
    ``steps`` on every rank, so they never wait on each other, and with two
    ranks (where left and right are the same peer) the messages between the
    pair still match in posting order.
    """

    @staticmethod
    def forward(ctx, steps: Tuple[int, ...], group, *tensors: Tensor):
        ctx.steps, ctx.group = steps, group
        # Every rank sends tensors shaped like ours (equal batch sizes).
        received = [
            torch.empty_like(t, memory_format=torch.contiguous_format)
            for t in tensors
        ]
        ops = [
            dist.P2POp(dist.isend, t.contiguous(), _ring_peer(s, group),
                       group=group) for t, s in zip(tensors, steps)
        ] + [
            dist.P2POp(dist.irecv, buf, _ring_peer(-s, group), group=group)
            for buf, s in zip(received, steps)
        ]
        for request in dist.batch_isend_irecv(ops):
            request.wait()
        return tuple(received)

    @staticmethod
    def backward(ctx, *grads: Tensor):
        back = tuple(-s for s in ctx.steps)
        return (None, None) + _RingShift.apply(back, ctx.group, *grads)


def neighbour_exchange(tensor: Tensor, group=None) -> Tensor:
    """Pass ``tensor`` one step around the ring (to rank + 1), with autograd.

    Args:
        tensor (Tensor): Same shape on every rank.
        group (ProcessGroup, optional): Defaults to the default group.

    Returns:
        Tensor: The tensor of rank - 1 (mod world size).
    """
    return _RingShift.apply((1, ), group, tensor)[0]


def neighbour_exchange_bidir(to_left: Tensor,
                             to_right: Tensor,
                             group=None) -> Tuple[Tensor, Tensor]:
    """Send one tensor to each ring neighbour at once, with autograd.

    Args:
        to_left (Tensor): Sent to rank - 1.
        to_right (Tensor): Sent to rank + 1; same shape as ``to_left``.
        group (ProcessGroup, optional): Defaults to the default group.

    Returns:
        tuple[Tensor, Tensor]: ``(from_left, from_right)``: the ``to_right``
        of rank - 1 and the ``to_left`` of rank + 1.
    """
    # Rightward first on every rank (see _RingShift on posting order).
    return _RingShift.apply((1, -1), group, to_right, to_left)


@torch.no_grad()
def top1_accuracy(logits: Tensor, offset: int = 0) -> Tensor:
    """Top-1 in-batch retrieval accuracy (%) of local query rows.

    Row ``i`` is correct when its largest logit is in column ``offset + i``
    (its pair; ``offset = rank * B`` for local rows against a gathered batch).
    A positive scale or a shared bias does not change the ranking, so raw
    similarities work as well as logits.

    Args:
        logits (Tensor): ``(B, N)`` scores of ``B`` local queries against the
            ``N`` keys of the (global) batch.
        offset (int): Column of row 0's pair. Defaults to 0.

    Returns:
        Tensor: Scalar accuracy in percent, on ``logits.device``.
    """
    target = torch.arange(logits.shape[0], device=logits.device) + offset
    return (logits.argmax(dim=1) == target).float().mean() * 100
