"""The pre-norm transformer shared by CLIP's image and text towers.

One block implementation serves both towers: the vision tower runs it with
full attention, the text tower with a causal mask. Attention always goes
through :func:`torch.nn.functional.scaled_dot_product_attention`, which picks
the flash / memory-efficient kernels on GPU and a fused kernel on CPU.

Parameter names follow OpenAI's CLIP release (``ln_1``,
``attn.in_proj_weight``, ``attn.out_proj``, ``ln_2``, ``mlp.c_fc``,
``mlp.c_proj``, ``resblocks.N``), the names open_clip also uses, so released
weights load by renaming the tower prefix only.

References:
    - Radford et al., "Learning Transferable Visual Models From Natural
      Language Supervision", ICML 2021 (arXiv 2103.00020).
    - Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021.
"""
from collections import OrderedDict
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmpretrain.models.utils import build_norm_layer
from torch.utils.checkpoint import checkpoint

from mmclip.registry import MODELS


def build_activation(act_cfg: dict) -> nn.Module:
    """Build the MLP activation from the registry (``MODELS.build``).

    OpenAI's weights were trained with ``dict(type='QuickGELU')``,
    ``x * sigmoid(1.702 * x)`` (mmpretrain's module), most LAION weights with
    ``dict(type='GELU')`` (torch's exact, erf-based ``nn.GELU``, registered
    by mmcv). Running weights with the other one silently costs zero-shot
    accuracy, so the activation is part of every tower config. Any other
    registered activation works too (e.g. ``dict(type='SiLU')``).

    The lookup is made in mmclip's scope whatever the caller's default scope
    (``mmpretrain.get_model`` sets ``'mmpretrain'``, other libraries their
    own), so the same config builds the same module everywhere.

    Args:
        act_cfg (dict): Activation config with a registered ``type`` and the
            module's keyword arguments.

    Returns:
        nn.Module: The activation layer.
    """
    act_type = act_cfg.get('type') if isinstance(act_cfg, dict) else None
    with MODELS.switch_scope_and_registry('mmclip') as registry:
        if act_type is None or registry.get(act_type) is None:
            raise ValueError(
                f'Unknown activation {act_cfg!r}: use dict(type="QuickGELU") '
                'for OpenAI weights or dict(type="GELU") for most LAION '
                'weights.')
        return registry.build(act_cfg)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a packed input projection and SDPA.

    The packed ``in_proj_weight`` / ``in_proj_bias`` and the ``out_proj``
    linear mirror :class:`torch.nn.MultiheadAttention`'s parameters (and so
    OpenAI's checkpoints), but the computation is a single fused
    ``scaled_dot_product_attention`` call in batch-first layout.

    Args:
        embed_dims (int): Width ``C`` of the tokens.
        num_heads (int): Number of heads; must divide ``embed_dims``.
        attn_drop (float): Dropout probability of the attention weights in
            training (inside SDPA). Defaults to 0.

    Shapes:
        - input: ``(B, L, C)``
        - output: ``(B, L, C)``
    """

    def __init__(self, embed_dims: int, num_heads: int, attn_drop: float = 0.):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by '
                             f'num_heads={num_heads}.')
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dims,
                                                       embed_dims))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dims))
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self,
                x: torch.Tensor,
                is_causal: bool = False,
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, L, C = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(B, L, 3, self.num_heads,
                           C // self.num_heads).permute(2, 0, 3, 1,
                                                        4).unbind(0)
        x = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.attn_drop if self.training else 0.,
            is_causal=is_causal)
        return self.out_proj(x.transpose(1, 2).reshape(B, L, C))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``.

    Args:
        embed_dims (int): Token width ``C``.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width over ``C``. Defaults to 4.
        act_cfg (dict): MLP activation, see :func:`build_activation`.
            Defaults to ``dict(type='QuickGELU')``.
        drop_path_rate (float): Stochastic depth of both residual branches
            (mmcv's ``DropPath``). Defaults to 0.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-5.
        attn_drop_rate (float): Dropout on the attention weights in
            training. Defaults to 0.

    Shapes:
        - input: ``(B, L, C)``
        - output: ``(B, L, C)``
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 act_cfg: dict = dict(type='QuickGELU'),
                 drop_path_rate: float = 0.,
                 layer_norm_eps: float = 1e-5,
                 attn_drop_rate: float = 0.):
        super().__init__()
        hidden = int(embed_dims * mlp_ratio)
        norm_cfg = dict(type='LN', eps=layer_norm_eps)
        self.ln_1 = build_norm_layer(norm_cfg, embed_dims)
        self.attn = SelfAttention(embed_dims, num_heads, attn_drop_rate)
        self.ln_2 = build_norm_layer(norm_cfg, embed_dims)
        self.mlp = nn.Sequential(
            OrderedDict([('c_fc', nn.Linear(embed_dims, hidden)),
                         ('gelu', build_activation(act_cfg)),
                         ('c_proj', nn.Linear(hidden, embed_dims))]))
        # Parameter-free: state dicts keep OpenAI's names either way.
        self.drop_path = (
            DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity())

    def forward(self, x: torch.Tensor, is_causal: bool = False):
        x = x + self.drop_path(self.attn(self.ln_1(x), is_causal))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` (``resblocks.N``).

    Args:
        embed_dims (int): Token width ``C``.
        num_layers (int): Number of blocks.
        num_heads (int): Attention heads per block.
        mlp_ratio (float): MLP width ratio. Defaults to 4.
        act_cfg (dict): MLP activation. Defaults to QuickGELU.
        drop_path_rate (float): Stochastic depth of the last block, linearly
            increasing from 0 at the first. Defaults to 0.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-5.
        attn_drop_rate (float): Attention-weight dropout of every block in
            training. Defaults to 0.

    Shapes:
        - input: ``(B, L, C)``
        - output: ``(B, L, C)``
    """

    def __init__(self,
                 embed_dims: int,
                 num_layers: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 act_cfg: dict = dict(type='QuickGELU'),
                 drop_path_rate: float = 0.,
                 layer_norm_eps: float = 1e-5,
                 attn_drop_rate: float = 0.):
        super().__init__()
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        self.grad_checkpointing = False
        # Plain Python (not torch.linspace) so the model builds on the meta
        # device too.
        rates = [drop_path_rate * i / max(num_layers - 1, 1)
                 for i in range(num_layers)]
        self.resblocks = nn.ModuleList([
            ResidualAttentionBlock(embed_dims, num_heads, mlp_ratio, act_cfg,
                                   rate, layer_norm_eps, attn_drop_rate)
            for rate in rates
        ])

    def forward(self, x: torch.Tensor, is_causal: bool = False):
        for index in range(self.num_layers):
            x = self.forward_block(index, x, is_causal)
        return x

    def forward_block(self,
                      index: int,
                      x: torch.Tensor,
                      is_causal: bool = False) -> torch.Tensor:
        """Run block ``index`` alone, checkpointed like in :meth:`forward`,
        so that a tower can read the output of every block it needs.

        Args:
            index (int): Block number, ``0 <= index < num_layers``.
            x (Tensor): The previous block's output ``(B, L, C)``.
            is_causal (bool): Causal attention (the text tower). Defaults to
                False.

        Returns:
            Tensor: The block's output ``(B, L, C)``.
        """
        block = self.resblocks[index]
        if self.grad_checkpointing and self.training \
                and torch.is_grad_enabled():
            # Non-reentrant checkpointing works with frozen inputs and
            # keyword arguments; recomputes the block in backward.
            return checkpoint(block, x, is_causal, use_reentrant=False)
        return block(x, is_causal)

    def init_weights_like_openai(self):
        """OpenAI's text-tower init: std scaled with width and depth."""
        width, layers = self.embed_dims, self.num_layers
        attn_std = width**-0.5
        proj_std = attn_std * (2 * layers)**-0.5
        fc_std = (2 * width)**-0.5
        for block in self.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
