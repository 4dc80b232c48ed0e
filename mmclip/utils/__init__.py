from .checkpoint import (TorchScriptArchiveError, UnsafeCheckpointError,
                         get_state_dict, load_checkpoint_file,
                         load_tensors_only, load_weights,
                         mmclip_checkpoint_loading, unsafe_globals, weights_of)
from .setup_env import register_all_modules

__all__ = [
    'TorchScriptArchiveError', 'UnsafeCheckpointError', 'get_state_dict',
    'load_checkpoint_file', 'load_tensors_only', 'load_weights',
    'mmclip_checkpoint_loading', 'register_all_modules', 'unsafe_globals',
    'weights_of'
]
