"""Runner-side pieces: hooks and optimizer wrappers."""
import mmpretrain.engine  # noqa: F401 (fills the parent registries)

from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .runner import build_runner  # noqa: F401
from .threads import configure_threads  # noqa: F401
