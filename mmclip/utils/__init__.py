from .checkpoint import (UnsafeCheckpointError, add_trusted_dir,
                         get_state_dict, install_mmengine_loader,
                         load_checkpoint_file, load_weights,
                         trust_checkpoints_in)
from .setup_env import register_all_modules

__all__ = [
    'UnsafeCheckpointError', 'add_trusted_dir', 'get_state_dict',
    'install_mmengine_loader', 'load_checkpoint_file', 'load_weights',
    'register_all_modules',
    'trust_checkpoints_in'
]
