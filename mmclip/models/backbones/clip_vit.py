"""CLIP's image tower: a pre-norm Vision Transformer with a projection."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmpretrain.models.utils import build_norm_layer

from mmclip.registry import MODELS
from ..layers import TowerMixin, Transformer, resize_grid_pos_embed
from ..utils import resolve_arch


@MODELS.register_module()
class CLIPVisionTransformer(TowerMixin, BaseModule):
    """CLIP Vision Transformer (image tower).

    conv patch embedding (no bias) -> prepend class token -> + absolute
    position embedding -> ``ln_pre`` -> pre-norm blocks -> ``ln_post`` -> pool
    (class token or mean of patch tokens) -> ``proj`` (no bias).
    ``out_indices`` and ``out_type`` also give the outputs of intermediate
    blocks, as mmpretrain's ``VisionTransformer`` does, for dense and
    multi-level users (feature pyramids, detection, segmentation).
    Parameter names are OpenAI's (``conv1``, ``class_embedding``,
    ``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N``,
    ``ln_post``, ``proj``).

    Args:
        arch (str | dict): ``'b'``/``'base'`` (width 768, 12 layers, 12
            heads, embed dim 512), ``'l'``/``'large'`` (1024, 24, 16 -> 768),
            ``'h'``/``'huge'`` (1280, 32, 16 -> 1024), or a dict with keys
            ``embed_dims``, ``num_layers``, ``num_heads`` and optionally
            ``mlp_ratio`` and ``proj_dims``. Defaults to ``'base'``.
        img_size (int): Input resolution (224, 336, 384, 448, ...); must be a
            multiple of ``patch_size``. Defaults to 224.
        patch_size (int): Patch size: 32, 16 or 14. Defaults to 16.
        out_channels (int, optional): Output embedding dim; ``None`` takes the
            arch's ``proj_dims``; 0 drops the projection. Defaults to None.
        act_cfg (dict): MLP activation, ``dict(type='QuickGELU')`` (OpenAI
            weights) or ``dict(type='GELU')`` (most LAION weights).
        pool_type (str): ``'cls_token'`` (OpenAI) or ``'avg'`` (mean of the
            patch tokens). Defaults to ``'cls_token'``.
        out_indices (int | Sequence[int]): The blocks whose outputs
            :meth:`forward` returns, numbered from 0; negative numbers count
            from the end (``-1`` is the last block). The outputs come in block
            order whatever the order given; a block named twice is refused.
            Defaults to -1.
        out_type (str): What each output is, made from the block's tokens
            ``x`` ``(B, 1 + N, C)`` (``N = (img_size // patch_size) ** 2``):

            - ``'proj'``: CLIP's image embedding, the ``pool_type`` feature
              times ``proj``, ``(B, out_channels)`` (``(B, C)`` without a
              projection); the last block only.
            - ``'pooled'``: the ``pool_type`` feature ``(B, C)``.
            - ``'cls_token'``: the class token ``x[:, 0]`` ``(B, C)``.
            - ``'raw'``: every token ``(B, 1 + N, C)``.
            - ``'featmap'``: the patch tokens as a map
              ``(B, C, img_size // patch_size, img_size // patch_size)``, the
              class token dropped. It needs every patch: not available in
              training with ``patch_dropout``.

            As with mmpretrain's ``final_norm=True``, the last block's tokens
            pass ``ln_post`` first (see ``final_norm``), those of the other
            blocks are the blocks' own outputs. Defaults to ``'proj'``.
        final_norm (bool): Whether the last block's tokens pass ``ln_post``.
            False builds no ``ln_post``, as mmpretrain's ``VisionTransformer``:
            transformers' ``CLIPForImageClassification`` averages the patch
            tokens of the last block as they come out of it
            (``pool_type='avg'``, ``out_channels=0``). Defaults to True.
        patch_dropout (float): Fraction of patch tokens randomly dropped in
            training (FLIP, arXiv 2212.00794); the class token is kept.
            Defaults to 0.
        drop_path_rate (float): Stochastic depth rate of the last block,
            increasing linearly from 0 at the first. Defaults to 0.
        attn_drop_rate (float): Dropout on the attention weights of every
            block in training. Defaults to 0.
        frozen_stages (int): ``-1`` freezes nothing; ``0`` freezes the patch
            embedding, class token, position embedding and ``ln_pre``; ``k``
            additionally the first ``k`` blocks; ``num_layers`` plus
            ``ln_post`` and ``proj`` too (see :meth:`lock`). Defaults to -1.
        with_cp (bool): Gradient checkpointing of every block in training.
            Defaults to False.
        layer_norm_eps (float): Epsilon of every LayerNorm. Defaults to 1e-5
            (OpenAI, open_clip, timm); mmpretrain's CLIP ViTs use 1e-6.
        init_cfg (dict | list[dict], optional): mmengine init config, e.g.
            ``dict(type='Pretrained', checkpoint=...)``. Defaults to None.

    Shapes:
        - input: ``(B, 3, img_size, img_size)``
        - output: a tuple with one tensor per entry of ``out_indices``, in
          block order, shaped as ``out_type`` says.
    """
    arch_zoo = {
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=768, num_layers=12, num_heads=12, proj_dims=512)),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=1024, num_layers=24, num_heads=16, proj_dims=768)),
        **dict.fromkeys(['h', 'huge'], dict(
            embed_dims=1280, num_layers=32, num_heads=16, proj_dims=1024)),
    }
    POOL_TYPES = ('cls_token', 'avg')
    OUT_TYPES = ('proj', 'pooled', 'cls_token', 'raw', 'featmap')

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: int = 224,
                 patch_size: int = 16,
                 out_channels: Optional[int] = None,
                 act_cfg: dict = dict(type='QuickGELU'),
                 pool_type: str = 'cls_token',
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'proj',
                 final_norm: bool = True,
                 patch_dropout: float = 0.,
                 drop_path_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 layer_norm_eps: float = 1e-5,
                 init_cfg: Optional[Union[dict, Sequence[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = resolve_arch(self.arch_zoo, arch,
                                          type(self).__name__)
        width = self.arch_settings['embed_dims']
        if img_size % patch_size:
            raise ValueError(f'img_size={img_size} is not a multiple of '
                             f'patch_size={patch_size}.')
        if pool_type not in self.POOL_TYPES:
            raise ValueError(f'pool_type={pool_type!r}: use one of '
                             f'{self.POOL_TYPES}.')
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'out_type={out_type!r}: use one of '
                             f'{self.OUT_TYPES}.')
        self.out_indices = self._resolve_out_indices(out_indices)
        if out_type == 'proj' and \
                self.out_indices != (self.arch_settings['num_layers'] - 1, ):
            raise ValueError(
                f"out_type='proj' is the last block's embedding (ln_post, "
                'pooling, proj) and has no intermediate form: use it with '
                "out_indices=-1, or use out_type 'pooled', 'cls_token', "
                f"'raw' or 'featmap' for out_indices={out_indices!r}.")
        if not 0 <= patch_dropout < 1:
            raise ValueError(
                f'patch_dropout={patch_dropout} must be in [0, 1).')
        if out_channels is None:
            out_channels = self.arch_settings.get('proj_dims', width)
        self.embed_dims = width
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.out_channels = out_channels or width
        self.pool_type = pool_type
        self.out_type = out_type
        self.patch_dropout = patch_dropout
        self.frozen_stages = frozen_stages

        scale = width**-0.5
        num_tokens = 1 + self.grid_size[0] * self.grid_size[1]
        self.conv1 = nn.Conv2d(
            3, width, patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn(num_tokens, width))
        norm_cfg = dict(type='LN', eps=layer_norm_eps)
        self.ln_pre = build_norm_layer(norm_cfg, width)
        self.transformer = Transformer(
            width,
            self.arch_settings['num_layers'],
            self.arch_settings['num_heads'],
            mlp_ratio=self.arch_settings.get('mlp_ratio', 4.),
            act_cfg=act_cfg,
            drop_path_rate=drop_path_rate,
            layer_norm_eps=layer_norm_eps,
            attn_drop_rate=attn_drop_rate)
        self.transformer.grad_checkpointing = with_cp
        self.ln_post = build_norm_layer(norm_cfg, width) \
            if final_norm else None
        self.proj = nn.Parameter(scale * torch.randn(
            width, out_channels)) if out_channels else None

        self._register_load_state_dict_pre_hook(self._resize_pos_embed_hook)
        self._freeze_stages()

    def _resize_pos_embed_hook(self, state_dict, prefix, *args, **kwargs):
        """Resize a checkpoint's position grid to this model's (bicubic)."""
        key = prefix + 'positional_embedding'
        if key not in state_dict:
            return
        old = state_dict[key]
        if old.shape == self.positional_embedding.shape:
            return
        if old.ndim != 2 or old.shape[1] != self.embed_dims:
            return  # let load_state_dict report the real mismatch
        state_dict[key] = resize_grid_pos_embed(old, self.grid_size)
        MMLogger.get_current_instance().info(
            f'Resized position embedding of {prefix or "the image tower"} '
            f'from {tuple(old.shape)} to {tuple(state_dict[key].shape)} '
            f'(grid {self.grid_size}, bicubic).')

    def _resolve_out_indices(
            self, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        """``out_indices`` as ascending block numbers from 0, checked."""
        num_layers = self.arch_settings['num_layers']
        indices = (out_indices, ) if isinstance(out_indices,
                                                int) else out_indices
        if not isinstance(indices, Sequence) or not indices or not all(
                isinstance(i, int) and -num_layers <= i < num_layers
                for i in indices):
            raise ValueError(
                f'out_indices={out_indices!r}: use an int or a non-empty '
                f'sequence of ints in [{-num_layers}, {num_layers - 1}], '
                f'the blocks of this {num_layers}-block tower (negative '
                'numbers count from the end).')
        blocks = [i % num_layers for i in indices]
        if len(set(blocks)) != len(blocks):
            raise ValueError(f'out_indices={out_indices!r} names a block '
                             'twice: name each block once.')
        return tuple(sorted(blocks))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patchify and add the class token and position embedding.

        Args:
            x (Tensor): Images ``(B, 3, H, W)``.

        Returns:
            Tensor: Tokens ``(B, 1 + N, C)`` after ``ln_pre`` (``N`` reduced
            by patch dropout in training).
        """
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, N, C)
        if x.shape[1] + 1 != self.positional_embedding.shape[0]:
            raise ValueError(
                f'Input of {tuple(x.shape[1:])} patches does not match the '
                f'{self.grid_size} grid of img_size={self.img_size}; resize '
                'the images or build the model with the matching img_size.')
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        if self.training and self.patch_dropout > 0:
            x = self._drop_patches(x)
        return self.ln_pre(x)

    def _drop_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Keep a random subset of patch tokens per sample (class kept)."""
        cls, patches = x[:, :1], x[:, 1:]
        B, N, C = patches.shape
        keep = max(1, int(N * (1 - self.patch_dropout)))
        idx = torch.rand(B, N, device=x.device).topk(keep, dim=1).indices
        patches = patches.gather(1, idx.unsqueeze(-1).expand(-1, -1, C))
        return torch.cat([cls, patches], dim=1)

    def forward(self, x: torch.Tensor) -> tuple:
        if self.out_type == 'featmap' and self.training and \
                self.patch_dropout > 0:
            raise ValueError(
                f"out_type='featmap' needs every patch token, but "
                f'patch_dropout={self.patch_dropout} drops some in training: '
                "build the backbone with patch_dropout=0, or use out_type "
                "'raw', 'cls_token' or 'pooled'.")
        x = self.embed(x)
        last_block = self.transformer.num_layers - 1
        outs = []
        # Blocks after the last requested one cannot change any output.
        for index in range(self.out_indices[-1] + 1):
            x = self.transformer.forward_block(index, x)
            if index == last_block and self.ln_post is not None:
                x = self.ln_post(x)
            if index in self.out_indices:
                outs.append(self._format_output(x))
        return tuple(outs)

    def _format_output(self, x: torch.Tensor) -> torch.Tensor:
        """One block's tokens ``(B, 1 + N, C)`` as ``out_type`` says."""
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        if self.out_type == 'featmap':
            # (B, N, C) -> (B, H, W, C) -> (B, C, H, W), row-major patches.
            return x[:, 1:].reshape(x.shape[0], *self.grid_size,
                                    -1).permute(0, 3, 1, 2)
        x = x[:, 0] if self.pool_type == 'cls_token' else x[:, 1:].mean(1)
        if self.out_type == 'proj' and self.proj is not None:
            x = x @ self.proj
        return x

    def stem_parts(self) -> tuple:
        return (self.conv1, self.class_embedding, self.positional_embedding,
                self.ln_pre)

    def get_layer_depth(self, param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """Depth of a parameter for layer-wise learning-rate decay, as
        mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks its
        model (an ``ImageClassifier`` forwards to its backbone with
        ``prefix='backbone.'``).

        The stem (``conv1``, ``class_embedding``, ``positional_embedding``,
        ``ln_pre``) is depth 0, block ``i`` is depth ``i + 1``, and
        ``ln_post``, ``proj`` and every parameter outside the tower (names
        without ``prefix``: a classifier's head) are the last depth,
        ``num_layers + 1``. The constructor multiplies the learning rate of
        depth ``d`` by ``layer_decay_rate ** (num_layers + 1 - d)``: 1 for
        the head, the smallest factor for the stem.

        Args:
            param_name (str): Parameter name in the model that holds the
                tower, e.g. ``'backbone.transformer.resblocks.3.ln_1.weight'``.
            prefix (str): The tower's name prefix in that model. Defaults to
                ``''`` (names of the tower itself).

        Returns:
            tuple[int, int]: The parameter's depth and the number of depths
            (``num_layers + 2``).
        """
        num_depths = self.transformer.num_layers + 2
        if not param_name.startswith(prefix):
            return num_depths - 1, num_depths
        name = param_name[len(prefix):]
        if name.split('.')[0] in ('conv1', 'class_embedding',
                                  'positional_embedding', 'ln_pre'):
            return 0, num_depths
        if name.startswith('transformer.resblocks.'):
            return int(name.split('.')[2]) + 1, num_depths
        return num_depths - 1, num_depths

    def head_parts(self) -> tuple:
        return (self.ln_post, self.proj)
