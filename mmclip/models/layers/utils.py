"""Small helpers shared by the towers."""
import torch.nn as nn


def freeze(*modules):
    """Stop gradients of ``modules`` (parameters or modules) and set them to eval.

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
