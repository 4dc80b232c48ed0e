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
  back the way the tensors came.
"""
import warnings
from typing import Tuple

import torch
import torch.distributed as dist
from torch import Tensor

try:
    import torch.distributed.nn as dist_nn
except ImportError:  # torch built without distributed support
    dist_nn = None

__all__ = [
    'get_rank_and_world_size', 'check_batch_sizes', 'all_gather_with_grad',
    'all_gather_no_grad', 'gather_features', 'neighbour_exchange',
    'neighbour_exchange_bidir', 'top1_accuracy'
]


def get_rank_and_world_size(group=None) -> Tuple[int, int]:
    """Rank and world size of ``group``; ``(0, 1)`` when not distributed.

    Args:
        group (ProcessGroup, optional): Defaults to the default group.

    Returns:
        tuple[int, int]: ``(rank, world_size)``.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def check_batch_sizes(tensor: Tensor, group=None) -> None:
    """Raise ``ValueError`` unless ``tensor.shape[0]`` is equal on all ranks.

    Collectives on tensors of different sizes abort (gloo), hang or return
    garbage, so a mismatch is caught first. Costs one all-gather of one
    integer per rank and a host sync; every rank raises the same error.

    Args:
        tensor (Tensor): The local batch, ``(B, ...)``.
        group (ProcessGroup, optional): Defaults to the default group.
    """
    world_size = get_rank_and_world_size(group)[1]
    if world_size == 1:
        return
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.empty_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size, group=group)
    sizes = [int(s) for s in sizes]
    if len(set(sizes)) > 1:
        raise ValueError(
            f'Local batch sizes differ across ranks: {sizes}. The gathered '
            'contrastive losses need the same batch size on every rank: use '
            "mmengine's DefaultSampler (round_up=True) or InfiniteSampler, "
            'or drop the last incomplete batch.')


def all_gather_with_grad(tensor: Tensor, group=None) -> Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, keeping autograd.

    The backward of each rank's gathered copy reaches the rank that owns the
    slice, summed over ranks, so a loss computed from the gathered tensor on
    every rank yields the gradient of the *sum* of those losses.

    Args:
        tensor (Tensor): ``(B, ...)``; ``B`` equal on all ranks.
        group (ProcessGroup, optional): Defaults to the default group.

    Returns:
        Tensor: ``(world_size * B, ...)``, rank ``r``'s rows at
        ``[r * B, (r + 1) * B)``.
    """
    if get_rank_and_world_size(group)[1] == 1:
        return tensor
    kwargs = {} if group is None else dict(group=group)
    with warnings.catch_warnings():
        # Recent torch marks it deprecated in favour of a private
        # ``_functional_collectives`` API; it remains the public
        # differentiable gather (open_clip's too), so keep logs clean.
        warnings.simplefilter('ignore', FutureWarning)
        gathered = dist_nn.all_gather(tensor, **kwargs)
    return torch.cat(gathered, dim=0)


@torch.no_grad()
def _gather_detached(tensor: Tensor, group=None) -> list:
    world_size = dist.get_world_size(group)
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.detach().contiguous(), group=group)
    return parts


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
    rank, world_size = get_rank_and_world_size(group)
    if world_size == 1:
        return tensor if keep_local_grad else tensor.detach()
    parts = _gather_detached(tensor, group)
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


def _p2p(sends, recv_likes, group=None) -> list:
    """Post all sends ``[(tensor, peer)]`` and receives ``[(like, peer)]``
    together (so no pair of ranks deadlocks waiting on each other), wait, and
    return the received tensors in the order of ``recv_likes``."""
    recvs = [
        torch.empty_like(like, memory_format=torch.contiguous_format)
        for like, _ in recv_likes
    ]
    ops = [
        dist.P2POp(dist.isend, t.contiguous(), peer, group=group)
        for t, peer in sends
    ] + [
        dist.P2POp(dist.irecv, buf, peer, group=group)
        for buf, (_, peer) in zip(recvs, recv_likes)
    ]
    for req in dist.batch_isend_irecv(ops):
        req.wait()
    return recvs


def _peer(rank: int, group) -> int:
    # P2POp wants global ranks; with a subgroup, map the group rank.
    return rank if group is None else dist.get_global_rank(group, rank)


class _ShiftRight(torch.autograd.Function):
    """Send to the right neighbour, receive from the left; gradients go the
    opposite way."""

    @staticmethod
    def forward(ctx, left: int, right: int, group, tensor: Tensor) -> Tensor:
        ctx.left, ctx.right, ctx.group = left, right, group
        return _p2p([(tensor, right)], [(tensor, left)], group)[0]

    @staticmethod
    def backward(ctx, grad: Tensor):
        # Our output came from the left: its gradient goes back left, and the
        # gradient of what we sent right comes back from the right.
        return None, None, None, _ShiftLeft.apply(ctx.left, ctx.right,
                                                  ctx.group, grad)


class _ShiftLeft(torch.autograd.Function):
    """Mirror of :class:`_ShiftRight` (used for its backward)."""

    @staticmethod
    def forward(ctx, left: int, right: int, group, tensor: Tensor) -> Tensor:
        ctx.left, ctx.right, ctx.group = left, right, group
        return _p2p([(tensor, left)], [(tensor, right)], group)[0]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, None, _ShiftRight.apply(ctx.left, ctx.right,
                                                   ctx.group, grad)


class _ExchangeBidir(torch.autograd.Function):
    """Send ``to_left``/``to_right`` to the neighbours and return what they
    sent us, ``(from_left, from_right)``. The backward is the same exchange:
    the gradient of ``from_left`` is sent left, and the left neighbour's
    answer is the gradient of our ``to_left`` (likewise on the right)."""

    @staticmethod
    def forward(ctx, left: int, right: int, group, to_left: Tensor,
                to_right: Tensor):
        ctx.left, ctx.right, ctx.group = left, right, group
        # The left neighbour sends us its ``to_right``, shaped like ours
        # (equal batch sizes); likewise on the right. Rightward messages are
        # posted first on both ends so that, with two ranks (left == right),
        # the messages of the one pair still match in posting order.
        from_left, from_right = _p2p([(to_right, right), (to_left, left)],
                                     [(to_right, left), (to_left, right)],
                                     group)
        return from_left, from_right

    @staticmethod
    def backward(ctx, grad_from_left: Tensor, grad_from_right: Tensor):
        grad_to_left, grad_to_right = _ExchangeBidir.apply(
            ctx.left, ctx.right, ctx.group, grad_from_left, grad_from_right)
        return None, None, None, grad_to_left, grad_to_right


def _neighbours(group) -> Tuple[int, int]:
    rank, world_size = get_rank_and_world_size(group)
    return (_peer((rank - 1) % world_size, group),
            _peer((rank + 1) % world_size, group))


def neighbour_exchange(tensor: Tensor, group=None) -> Tensor:
    """Pass ``tensor`` one step around the ring (to rank + 1), with autograd.

    Args:
        tensor (Tensor): Same shape on every rank.
        group (ProcessGroup, optional): Defaults to the default group.

    Returns:
        Tensor: The tensor of rank - 1 (mod world size).
    """
    left, right = _neighbours(group)
    return _ShiftRight.apply(left, right, group, tensor)


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
    left, right = _neighbours(group)
    return _ExchangeBidir.apply(left, right, group, to_left, to_right)


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
