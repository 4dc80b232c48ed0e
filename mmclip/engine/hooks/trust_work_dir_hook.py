"""Let a run resume from its own full-state checkpoints."""
from mmengine.hooks import Hook

from mmclip.registry import HOOKS
from mmclip.utils.checkpoint import add_trusted_dir


@HOOKS.register_module()
class TrustWorkDirHook(Hook):
    """Trust the run's ``work_dir`` for full-state checkpoint loading.

    mmengine saves optimizer state and its message hub (numpy history) with
    pickle; resuming must unpickle them. mmclip unpickles only files inside a
    trusted directory (see :mod:`mmclip.utils.checkpoint`), and this hook
    registers the run's own work dir in ``before_run``, which mmengine calls
    before it loads or resumes a checkpoint. Every other file is still loaded
    with ``weights_only=True``.
    """
    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        add_trusted_dir(runner.work_dir)
