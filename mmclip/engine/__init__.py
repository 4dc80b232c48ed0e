"""Runner-side pieces: hooks and optimizer wrappers."""
import mmpretrain.engine  # noqa: F401 (fills the parent registries)

from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
