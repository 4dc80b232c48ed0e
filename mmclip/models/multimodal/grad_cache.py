"""Exact gradient accumulation for contrastive losses (GradCache).

A contrastive loss couples every pair of the batch, so K micro-batches with
a loss each (mmengine's ``accumulative_counts``) train on K small batches of
negatives, not one large one. GradCache (Gao et al. 2021, "Scaling Deep
Contrastive Learning Batch Size under Memory Limited Setup", arXiv
2101.06983) gets the large batch's loss and gradients with one micro-batch's
activation memory, because the loss depends on the towers only through the
embeddings:

1. embed every micro-batch without a graph (``torch.no_grad``), saving the
   random number generators' state before each;
2. compute the loss of the whole batch from those embeddings and its
   gradient with respect to them (a few numbers per sample);
3. re-run each micro-batch with a graph, drawing the same dropout and
   patch-dropout masks (the saved RNG state), and back-propagate the cached
   embedding gradients through it.

By the chain rule the accumulated tower gradients are those of the one-pass
batch. Here the last micro-batch's re-run computes the whole-batch loss
again with its fresh embeddings spliced in, and that loss goes through the
optim wrapper's ``update_params`` like any loss: the temperature and the
head's parameters get their gradient once, the wrapper scales, checks and
steps as usual, and under DDP the last backward (the one that all-reduces)
reaches every parameter; the other micro-batches run under ``no_sync``.
open_clip's ``--accum-freq`` instead recomputes the loss after every
micro-batch (its temperature gradient is K times the batch's) and does not
replay dropout.
"""
from contextlib import contextmanager, nullcontext
from typing import Iterator, List, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor


class FeatureCache(NamedTuple):
    """L2-normalised embeddings of a whole batch (step 1 above), the input of
    :meth:`CLIPModel.loss` when it gets ``feature_cache``.

    Args:
        img (Tensor): Image embeddings ``(N, D)``.
        txt (Tensor): Text embeddings ``(N, D)``.
        rows (slice, optional): The rows whose embeddings the loss computes
            afresh from its ``inputs`` (with a graph) instead of taking them
            from the cache. None: every row from the cache.
    """
    img: Tensor
    txt: Tensor
    rows: Optional[slice] = None

    def splice(self, img: Tensor, txt: Tensor) -> Tuple[Tensor, Tensor]:
        """The cached embeddings with :attr:`rows` replaced by ``img`` and
        ``txt``; the other rows stay constants."""
        start, stop = self.rows.start, self.rows.stop
        return tuple(
            torch.cat([cached[:start], fresh, cached[stop:]])
            for cached, fresh in ((self.img, img), (self.txt, txt)))


class RNGSnapshot:
    """The CPU generator's state and, for a CUDA ``device``, that device's,
    taken at construction; :meth:`replay` draws the same numbers again."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu_state = torch.get_rng_state()
        self.cuda_state = (torch.cuda.get_rng_state(device)
                           if device.type == 'cuda' else None)

    @contextmanager
    def replay(self) -> Iterator[None]:
        """Run the block from the saved state; the generators get their
        state of before the block back afterwards, so the replay draws
        nothing from the run's stream of random numbers."""
        devices = [self.device] if self.cuda_state is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu_state)
            if self.cuda_state is not None:
                torch.cuda.set_rng_state(self.cuda_state, self.device)
            yield


def split_batch(inputs: Tensor, data_samples: list,
                accum_steps: int) -> List[Tuple[Tensor, list, slice]]:
    """Cut a batch into ``accum_steps`` micro-batches of (nearly) equal
    size; fewer when the batch has fewer samples (the last batch of an
    epoch). Exactness does not need equal sizes: the loss always sees the
    whole batch.

    Returns:
        list[tuple[Tensor, list, slice]]: ``(inputs, data_samples, rows)``
        of each micro-batch, ``rows`` its place in the batch.
    """
    bounds = torch.arange(len(inputs)).tensor_split(accum_steps)
    rows = [slice(int(b[0]), int(b[-1]) + 1) for b in bounds if len(b)]
    return [(inputs[r], data_samples[r], r) for r in rows]


def _no_sync(module: nn.Module):
    """DDP's / FSDP's ``no_sync`` context (gradients accumulate locally),
    or nothing for a model that is not wrapped."""
    no_sync = getattr(module, 'no_sync', None)
    return no_sync() if no_sync is not None else nullcontext()


def loss_and_feature_grads(model: nn.Module, feature_cache: FeatureCache
                           ) -> Tuple[dict, Tensor, Tensor]:
    """Step 2: the loss of the cached embeddings and its gradient with
    respect to them; ``CLIPModel.forward(mode='feature_grads')``.

    The backward runs inside the forward, for the embeddings only: no
    parameter gets a gradient, and a DDP/FSDP wrapper sees no backward
    through its output (FSDP would unshard its parameters for one and never
    reshard them).

    Args:
        model (CLIPModel): Computes the loss (``loss``, ``parse_losses``).
        feature_cache (FeatureCache): The whole batch's embeddings.

    Returns:
        tuple[dict, Tensor, Tensor]: The head's losses and logged values
        (detached), and the gradients of the loss (``parse_losses``) for the
        image and text embeddings, each ``(N, D)``.
    """
    with torch.enable_grad():
        img = feature_cache.img.detach().requires_grad_()
        txt = feature_cache.txt.detach().requires_grad_()
        losses = model.loss(None, None, FeatureCache(img, txt))
        loss, _ = model.parse_losses(losses)
        img_grad, txt_grad = torch.autograd.grad(loss, (img, txt))
    return ({key: value.detach() for key, value in losses.items()},
            img_grad, txt_grad)


def grad_cache_train_step(model: nn.Module, data, optim_wrapper,
                          accum_steps: int,
                          forward_module: Optional[nn.Module] = None) -> dict:
    """One optimizer step on ``data`` in ``accum_steps`` micro-batches with
    the loss, gradients and logged values of one pass over the whole batch
    (see the module docstring).

    Args:
        model (CLIPModel): The model (its data preprocessor and
            ``parse_losses``).
        data (dict): A batch as the dataloader gives it.
        optim_wrapper (OptimWrapper): Autocast (``optim_context``), loss
            scaling (``backward``) and the step (``update_params``) are its
            own. A wrapper with ``skip_if_nonfinite(loss)`` (mmclip's
            ``NonFiniteSkip*``) skips the step before any micro-batch is
            re-run when the loss is NaN/Inf.
        accum_steps (int): Micro-batches per step.
        forward_module (nn.Module, optional): What the forwards go through:
            the DDP/FSDP wrapper around ``model`` (gradient sync, sharded
            parameters). Defaults to ``model``.

    Returns:
        dict[str, Tensor]: The logged values (``loss``, ``temperature``,
        accuracies ...) of the whole batch.
    """
    net = forward_module if forward_module is not None else model
    with optim_wrapper.optim_context(net):
        data = model.data_preprocessor(data, True)
    chunks = split_batch(data['inputs'], data['data_samples'], accum_steps)

    # 1. Embeddings of every micro-batch, without a graph.
    snapshots, img, txt = [], [], []
    with torch.no_grad(), optim_wrapper.optim_context(net):
        for inputs, samples, _ in chunks:
            snapshots.append(RNGSnapshot(inputs.device))
            chunk_img, chunk_txt = net(inputs, samples, mode='features')
            img.append(chunk_img)
            txt.append(chunk_txt)
    img, txt = torch.cat(img), torch.cat(txt)

    # 2. The whole batch's loss and its gradient w.r.t. the embeddings,
    # taken within the forward: DDP/FSDP see an inference forward (nothing to
    # sync, no backward through their output), no parameter gets a gradient.
    with torch.no_grad(), optim_wrapper.optim_context(net):
        losses, img_grad, txt_grad = net(None, None, mode='feature_grads',
                                         feature_cache=FeatureCache(img, txt))
    loss, log_vars = model.parse_losses(losses)
    skip_if_nonfinite = getattr(optim_wrapper, 'skip_if_nonfinite', None)
    if skip_if_nonfinite is not None and skip_if_nonfinite(loss):
        return log_vars

    # 3. Re-run the micro-batches with a graph under their saved RNG state.
    *first, (last_inputs, last_samples, last_rows) = chunks
    for (inputs, samples, rows), snapshot in zip(first, snapshots):
        with _no_sync(net), snapshot.replay():
            with optim_wrapper.optim_context(net):
                chunk_img, chunk_txt = net(inputs, samples, mode='features')
            # d(sum(f * g)) / df = g: the cached gradients flow back exactly.
            optim_wrapper.backward((chunk_img * img_grad[rows]).sum() +
                                   (chunk_txt * txt_grad[rows]).sum())
    with snapshots[-1].replay(), optim_wrapper.optim_context(net):
        losses = net(last_inputs, last_samples, mode='loss',
                     feature_cache=FeatureCache(img, txt, last_rows))
    loss, log_vars = model.parse_losses(losses)
    optim_wrapper.update_params(loss)
    return log_vars
