"""Runner-side pieces: hooks and optimizer wrappers.

Importing this package also routes mmengine's local checkpoint loading
through :func:`mmclip.utils.checkpoint.load_checkpoint_file`
(``weights_only=True`` unless the file is in the run's own work dir).
"""
import mmpretrain.engine  # noqa: F401 (fills the parent registries)

from mmclip.utils.checkpoint import install_mmengine_loader
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403

install_mmengine_loader()
