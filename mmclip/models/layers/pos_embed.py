"""Resizing the grid of absolute position embeddings."""
import math
from typing import Tuple

import torch
import torch.nn.functional as F


def resize_grid_pos_embed(pos_embed: torch.Tensor,
                          new_grid: Tuple[int, int],
                          num_prefix_tokens: int = 1,
                          mode: str = 'bicubic') -> torch.Tensor:
    """Resize a ViT position embedding to a new patch grid.

    Uses antialiased bicubic interpolation with ``align_corners=False``, as
    open_clip (``resize_pos_embed``) and timm (``resample_abs_pos_embed``)
    do, so a 224px checkpoint loaded into a 384px model gives the same
    weights as in those libraries. (PyTorch's antialiased bicubic uses the
    PIL kernel, a=-0.5, which differs from the plain bicubic kernel even when
    upsampling; mmpretrain's own resize uses the plain one.)

    Args:
        pos_embed (Tensor): ``(num_prefix_tokens + H*W, C)``, the old square
            grid ``H == W`` after the prefix (class) tokens.
        new_grid (tuple[int, int]): Target grid ``(H', W')``.
        num_prefix_tokens (int): Tokens before the grid that are kept as they
            are. Defaults to 1 (the class token).
        mode (str): Interpolation mode. Defaults to ``'bicubic'``.

    Returns:
        Tensor: ``(num_prefix_tokens + H'*W', C)``, same dtype as the input.
    """
    prefix, grid = pos_embed[:num_prefix_tokens], pos_embed[num_prefix_tokens:]
    old = int(math.isqrt(grid.shape[0]))
    if old * old != grid.shape[0]:
        raise ValueError(f'Cannot resize a position embedding of '
                         f'{grid.shape[0]} grid tokens: not a square grid.')
    if (old, old) == tuple(new_grid):
        return pos_embed
    dtype = grid.dtype
    grid = grid.float().reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid, size=tuple(new_grid), mode=mode, antialias=True,
        align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(-1, pos_embed.shape[-1])
    return torch.cat([prefix, grid.to(dtype)], dim=0)
