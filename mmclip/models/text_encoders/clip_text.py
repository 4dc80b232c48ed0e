"""CLIP's text tower: a causal pre-norm transformer pooled at the EOT token."""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.models.utils import build_norm_layer

from mmclip.registry import MODELS
from ..layers import TowerMixin, Transformer
from ..utils import resolve_arch


@MODELS.register_module()
class CLIPTextTransformer(TowerMixin, BaseModule):
    """CLIP text encoder.

    token embedding + position embedding -> causal pre-norm blocks ->
    ``ln_final`` -> the feature at the end-of-text token ->
    ``text_projection``.
    Parameter names are OpenAI's (``token_embedding``,
    ``positional_embedding``, ``transformer.resblocks.N``, ``ln_final``,
    ``text_projection``).

    Trimming: with a causal mask a token only attends to earlier tokens, so
    the padding after a batch's last EOT cannot change any pooled feature.
    With ``trim_padding=True`` the batch is cut to its longest real sequence
    before the blocks; zero-shot prompts are ~8-15 of 77 tokens, so this
    saves most of the compute while giving the same result.

    Args:
        arch (str | dict): ``'b'``/``'base'`` (width 512, 12 layers, 8 heads,
            embed dim 512, used by ViT-B models), ``'l'``/``'large'`` (768,
            12, 12 -> 768, ViT-L/14), ``'h'``/``'huge'`` (1024, 24, 16 ->
            1024), or a dict with ``embed_dims``, ``num_layers``,
            ``num_heads`` (optionally ``mlp_ratio``, ``proj_dims``).
            Defaults to ``'base'``.
        vocab_size (int): Token vocabulary size. Defaults to 49408.
        context_length (int): Maximum tokens (position embeddings).
            Defaults to 77.
        out_channels (int, optional): Output embedding dim; ``None`` takes the
            arch's ``proj_dims``. Defaults to None.
        act_cfg (dict): MLP activation, QuickGELU (OpenAI) or GELU.
        eot_token_id (int, optional): Pool at the first occurrence of this id.
            ``None`` pools at the arg-max id, which is OpenAI's EOT (49407,
            the largest id). Defaults to None.
        trim_padding (bool): Cut the batch after its last pooled position
            before running the blocks (exact, see above). Defaults to True.
        frozen_stages (int): ``-1`` nothing frozen; ``0`` the embeddings;
            ``k`` also the first ``k`` blocks; ``num_layers`` everything.
            Defaults to -1.
        with_cp (bool): Gradient checkpointing in training. Defaults to False.
        attn_drop_rate (float): Dropout on the attention weights of every
            block in training. Defaults to 0.
        layer_norm_eps (float): Epsilon of every LayerNorm. Defaults to 1e-5.
        init_cfg (dict | list[dict], optional): mmengine init config.

    Shapes:
        - input: token ids ``(B, L)`` with ``L <= context_length``, int64.
        - output: a 1-tuple with ``(B, out_channels)``.
    """
    arch_zoo = {
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=512, num_layers=12, num_heads=8, proj_dims=512)),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=768, num_layers=12, num_heads=12, proj_dims=768)),
        **dict.fromkeys(['h', 'huge'], dict(
            embed_dims=1024, num_layers=24, num_heads=16, proj_dims=1024)),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 vocab_size: int = 49408,
                 context_length: int = 77,
                 out_channels: Optional[int] = None,
                 act_cfg: dict = dict(type='QuickGELU'),
                 eot_token_id: Optional[int] = None,
                 trim_padding: bool = True,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 attn_drop_rate: float = 0.,
                 layer_norm_eps: float = 1e-5,
                 init_cfg: Optional[Union[dict, Sequence[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = resolve_arch(self.arch_zoo, arch,
                                          type(self).__name__)
        width = self.arch_settings['embed_dims']
        if out_channels is None:
            out_channels = self.arch_settings.get('proj_dims', width)
        self.embed_dims = width
        self.out_channels = out_channels
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.eot_token_id = eot_token_id
        self.trim_padding = trim_padding
        self.frozen_stages = frozen_stages

        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(
            torch.empty(context_length, width))
        self.transformer = Transformer(
            width,
            self.arch_settings['num_layers'],
            self.arch_settings['num_heads'],
            mlp_ratio=self.arch_settings.get('mlp_ratio', 4.),
            act_cfg=act_cfg,
            layer_norm_eps=layer_norm_eps,
            attn_drop_rate=attn_drop_rate)
        self.transformer.grad_checkpointing = with_cp
        self.ln_final = build_norm_layer(
            dict(type='LN', eps=layer_norm_eps), width)
        self.text_projection = nn.Parameter(torch.empty(width, out_channels))

        # OpenAI's init, so a model trained from scratch starts as theirs did.
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width**-0.5)
        self.transformer.init_weights_like_openai()
        self._freeze_stages()

    def pool_index(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Position of the pooled (EOT) token of every sequence.

        Args:
            token_ids (Tensor): ``(B, L)`` token ids.

        Returns:
            Tensor: ``(B, )`` int64 positions.
        """
        if self.eot_token_id is None:
            return token_ids.argmax(dim=-1)
        return (token_ids == self.eot_token_id).int().argmax(dim=-1)

    def forward(self, token_ids: torch.Tensor) -> tuple:
        if token_ids.ndim != 2:
            raise ValueError('token_ids must be (batch, length), got shape '
                             f'{tuple(token_ids.shape)}.')
        if token_ids.shape[1] > self.context_length:
            raise ValueError(
                f'token_ids has {token_ids.shape[1]} positions but the text '
                f'encoder has context_length={self.context_length}; tokenize '
                f'with context_length={self.context_length}.')
        index = self.pool_index(token_ids)
        if self.trim_padding and token_ids.shape[0] > 0:
            token_ids = token_ids[:, :int(index.max()) + 1]
        length = token_ids.shape[1]
        x = self.token_embedding(token_ids)
        x = x + self.positional_embedding[:length].to(x.dtype)
        x = self.transformer(x, is_causal=True)
        x = self.ln_final(x[torch.arange(x.shape[0], device=x.device), index])
        return (x @ self.text_projection, )

    def stem_parts(self) -> tuple:
        return (self.token_embedding, self.positional_embedding)

    def head_parts(self) -> tuple:
        return (self.ln_final, self.text_projection)
