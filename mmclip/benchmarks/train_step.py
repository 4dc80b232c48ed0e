"""Train-step rows of ``tools/benchmarks/benchmark.py``.

One step = forward of both towers, the contrastive loss, backward and an
AdamW step (torch's defaults, lr 1e-5) on one batch of image-caption pairs:
mmclip's model + ``CLIPContrastiveHead``, open_clip's model + ``ClipLoss``,
transformers' ``CLIPModel(return_loss=True)``. fp32 weights, bf16 autocast
when ``--dtype bf16``. Measured without and with gradient checkpointing of
every block, and with ``--patch-dropout`` (mmclip and open_clip: a share
of the patch tokens dropped, FLIP); on CUDA also the memory a step
allocates.
"""
import gc
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn

from .flops import count_flops, flops_row, flops_row_name
from .timing import best_rates

# Libraries whose image tower can drop patch tokens in training (FLIP).
PATCH_DROPOUT_LIBRARIES = ('mmclip', 'open_clip')


def set_grad_checkpointing(name: str, model, enable: bool) -> None:
    """Turn gradient checkpointing of every block on or off in one
    library's model."""
    if name == 'transformers':
        if enable:
            model.gradient_checkpointing_enable()
        else:
            model.gradient_checkpointing_disable()
    elif name == 'mmclip':
        model.backbone.set_grad_checkpointing(enable)
        model.text_encoder.set_grad_checkpointing(enable)
    else:
        model.set_grad_checkpointing(enable)


def configure(name: str, model, grad_ckpt: bool, patch_dropout: float):
    """Gradient checkpointing and (mmclip, open_clip) patch dropout of one
    library's model."""
    set_grad_checkpointing(name, model, grad_ckpt)
    if name == 'mmclip':
        model.backbone.patch_dropout = patch_dropout
    elif name == 'open_clip':
        from open_clip.transformer import PatchDropout
        model.visual.patch_dropout = (
            PatchDropout(patch_dropout) if patch_dropout else nn.Identity())
    elif patch_dropout:
        raise ValueError(f'{name} has no patch dropout')


def loss_functions(models: dict) -> Dict[str, Callable]:
    """``{library: fn(images, token_ids) -> scalar loss}``."""
    import open_clip

    from mmclip.registry import MODELS
    head = MODELS.build(dict(type='CLIPContrastiveHead'))
    clip_loss = open_clip.ClipLoss()

    def mmclip_loss(x, ids):
        ours = models['mmclip']
        return head.loss(
            ours.encode_image(x, normalize=True),
            ours.encode_text(ids, normalize=True), ours.logit_scale)['loss']

    fns = {
        'mmclip': mmclip_loss,
        'open_clip': lambda x, ids: clip_loss(*models['open_clip'](x, ids)),
        'transformers': lambda x, ids: models['transformers'](
            input_ids=ids, pixel_values=x, return_loss=True).loss,
    }
    return {name: fns[name] for name in models}


def make_step(model, loss_fn: Callable, x: torch.Tensor, ids: torch.Tensor,
              amp: bool) -> Callable[[], None]:
    """One training step on ``(x, ids)`` as a callable (its own AdamW)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        with torch.autocast(x.device.type, torch.bfloat16, enabled=amp):
            loss = loss_fn(x, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def step_memory(steps: Dict[str, Callable], sync) -> Dict[str, float]:
    """GiB one step allocates at its peak above what is resident before it
    (every library's weights and optimizer state, created by the warm-up),
    so each library is charged its own activations, gradients and
    temporaries only."""
    mem = {}
    for name, step in steps.items():
        sync()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        sync()
        mem[name] = (torch.cuda.max_memory_allocated() - base) / 2**30
    return mem


def measure_training(models: dict, x: torch.Tensor, ids: torch.Tensor, args,
                     sync: Callable[[], None],
                     peak: Optional[float]) -> Dict[str, dict]:
    """The train-step rows: samples/s, MFU (or GFLOP/s) and, on CUDA, step
    memory, without and with gradient checkpointing (``args.grad_ckpt``),
    and with patch dropout (``args.patch_dropout``, if not 0).

    Args:
        models (dict): ``{library: model}`` in fp32 on the device.
        x (Tensor): Images ``(B, 3, H, W)``.
        ids (Tensor): Token ids ``(B, 77)``.
        args (Namespace): ``dtype``, ``repeats``, ``compile``,
            ``grad_ckpt``, ``patch_dropout`` of
            ``tools/benchmarks/benchmark.py``.
        sync (callable): Waits for the device.
        peak (float, optional): Dense bf16 peak (TFLOP/s) for MFU.

    Returns:
        dict: ``{row: {library: value}}``.
    """
    amp = args.dtype == 'bf16'
    for model in models.values():
        model.train()
    losses = loss_functions(models)
    compiled = {name: torch.compile(fn) if args.compile else fn
                for name, fn in losses.items()}
    cuda = x.device.type == 'cuda'
    variants = [('train step', False, 0.)] * (args.grad_ckpt != 'on') + [
        ('train step, grad ckpt', True, 0.)] * (args.grad_ckpt != 'off')
    if args.patch_dropout:
        variants.append((f'train step, patch dropout {args.patch_dropout:g}',
                         False, args.patch_dropout))
    rows = {}
    for label, ckpt, drop in variants:
        names = [name for name in losses
                 if not drop or name in PATCH_DROPOUT_LIBRARIES]
        # Model FLOPs: counted eagerly without checkpointing, so the
        # recomputed forward of checkpointed blocks is not useful work.
        flops = {}
        for name in names:
            configure(name, models[name], False, drop)
            with torch.autocast(x.device.type, torch.bfloat16, enabled=amp):
                flops[name] = count_flops(
                    lambda: losses[name](x, ids).backward())
            models[name].zero_grad(set_to_none=True)
            configure(name, models[name], ckpt, drop)
        steps = {name: make_step(models[name], compiled[name], x, ids, amp)
                 for name in names}
        rates = best_rates(steps, len(x), args.repeats, sync)
        rows[f'{label} (samples/s)'] = rates
        rows[flops_row_name(label, peak)] = flops_row(
            rates, flops, len(x), peak)
        if not drop:
            rows[f'{label}: peak memory of the step (GiB)'] = (
                step_memory(steps, sync) if cuda else
                dict.fromkeys(steps, 'n/a'))
        for name in names:
            configure(name, models[name], False, 0.)
        del steps  # their optimizer states
        gc.collect()
    return rows
