from mmclip.dependencies import has_torch

if has_torch():
    # Fill mmpretrain's registries: mmclip's registries fall back to them,
    # but mmengine only imports the *child's* locations on lookup.
    import mmpretrain.models  # noqa: F401

    from .backbones import *  # noqa: F401,F403
    from .classifiers import *  # noqa: F401,F403
    from .heads import *  # noqa: F401,F403
    from .layers import *  # noqa: F401,F403
    from .multimodal import *  # noqa: F401,F403
    from .pretrained import *  # noqa: F401,F403
    from .text_encoders import *  # noqa: F401,F403
    from .wrappers import *  # noqa: F401,F403
# Plain Python and numpy: the scoring-only install (mmclip.dependencies)
# imports the tokenizer alone.
from .tokenizers import *  # noqa: F401,F403
