"""Small helpers shared by the towers."""
import torch.nn as nn


def freeze(*modules):
    """Stop gradients of ``modules`` (parameters or modules) and set them to
    eval.

    Args:
        *modules (nn.Module | nn.Parameter | None): What to freeze; ``None``
            entries are ignored so optional parts can be passed as they are.
    """
    for m in modules:
        if m is None:
            continue
        if isinstance(m, nn.Parameter):
            m.requires_grad_(False)
            continue
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)


class TowerMixin:
    """Freezing and gradient checkpointing shared by the image and text
    towers. A tower has ``self.transformer`` (a
    :class:`~mmclip.models.layers.Transformer`), ``self.frozen_stages``, and
    names its parts in :meth:`stem_parts` (frozen from stage 0: embeddings,
    and the pre-norm) and :meth:`head_parts` (frozen only with every block:
    final norm and projection).
    """

    def stem_parts(self) -> tuple:
        raise NotImplementedError

    def head_parts(self) -> tuple:
        raise NotImplementedError

    def _freeze_stages(self):
        if self.frozen_stages < 0:
            return
        freeze(*self.stem_parts())
        for block in self.transformer.resblocks[:self.frozen_stages]:
            freeze(block)
        if self.frozen_stages >= self.transformer.num_layers:
            freeze(*self.head_parts())

    def lock(self, unlocked_layers: int = 0):
        """Freeze the tower (LiT-style), leaving the last blocks trainable.

        Args:
            unlocked_layers (int): How many of the last blocks (plus the
                final norm and projection) stay trainable; 0 freezes all.
                Defaults to 0.
        """
        self.frozen_stages = self.transformer.num_layers - unlocked_layers
        self._freeze_stages()

    def set_grad_checkpointing(self, enable: bool = True):
        """Turn gradient checkpointing of the blocks on or off."""
        self.transformer.grad_checkpointing = enable

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()  # frozen parts stay in eval mode
        return self
