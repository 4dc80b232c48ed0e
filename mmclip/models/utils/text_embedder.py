"""What predict heads see of a model's text side."""
import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
import torch.nn as nn

Texts = Union[Sequence[str], torch.Tensor]


@dataclass(frozen=True)
class TextEmbedder:
    """A text-encoding callable plus the identity of the weights behind it.

    Predict heads get this, and the image features, instead of the whole
    model (see :meth:`CLIPModel.text_embedder`).

    - ``embedder(texts)`` embeds a list of strings (tokenized, truncated to
      the context length) or ``(N, L)`` int64 token ids into ``(N, D)``
      embeddings, not normalised.
    - ``embedder.fingerprint()`` is a string that changes whenever the
      embeddings could (see :func:`text_tower_fingerprint`); heads key what
      they derive from the embeddings on it (e.g. the zero-shot classifier's
      memory and disk caches).

    Args:
        encode (callable): ``texts -> (N, D)`` embeddings.
        fingerprint (callable): ``() -> str``; should be cheap to call
            repeatedly (``CLIPModel.text_fingerprint`` memoises it).
    """
    encode: Callable[[Texts], torch.Tensor]
    fingerprint: Callable[[], str]

    def __call__(self, texts: Texts) -> torch.Tensor:
        return self.encode(texts)


def state_fingerprint(module: nn.Module, extra: str = '') -> str:
    """SHA-256 of ``extra`` and the module's state dict (names, dtypes,
    shapes and bytes): what a module's outputs depend on besides its input.

    Args:
        module (nn.Module): E.g. a text or image tower.
        extra (str): Anything else the outputs depend on (a tokenizer's
            type, a preprocessing description). Defaults to ``''``.

    Returns:
        str: 64 hex digits.
    """
    digest = hashlib.sha256()
    digest.update(extra.encode())
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f'{name}:{flat.dtype}:{tuple(tensor.shape)}'.encode())
        # Viewing as bytes works for every dtype (numpy lacks bfloat16).
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def text_tower_fingerprint(text_encoder: nn.Module, tokenizer) -> str:
    """SHA-256 of everything text embeddings depend on besides the text:
    the text tower's state dict and the tokenizer's type and context length
    (see :func:`state_fingerprint`).

    Args:
        text_encoder (nn.Module): The text tower.
        tokenizer (callable): Its tokenizer.

    Returns:
        str: 64 hex digits.
    """
    return state_fingerprint(
        text_encoder, f'{type(tokenizer).__name__}:'
        f'{getattr(tokenizer, "context_length", None)}')
