"""Plot the training curves (loss, temperature) as a PNG in the work dir."""
import os.path as osp
from typing import Sequence

from mmengine.hooks import Hook

from mmclip.registry import HOOKS


@HOOKS.register_module()
class TrainingCurveHook(Hook):
    """Write ``{work_dir}/training_curves.png`` after every epoch and at the
    end of training, one panel per logged scalar.

    Args:
        keys (Sequence[str]): Scalars of the message hub (``train/`` prefix
            added) to plot. Defaults to ``('loss', 'temperature')``.
        filename (str): File name in the work dir. Defaults to
            ``'training_curves.png'``.
    """
    priority = 'LOWEST'

    def __init__(self, keys: Sequence[str] = ('loss', 'temperature'),
                 filename: str = 'training_curves.png'):
        self.keys = tuple(keys)
        self.filename = filename

    def after_train_epoch(self, runner) -> None:
        self.plot(runner)

    def after_run(self, runner) -> None:
        self.plot(runner)

    def plot(self, runner) -> str:
        """Draw the curves; returns the PNG path ('' if nothing logged)."""
        series = {}
        for key in self.keys:
            name = f'train/{key}'
            if name in runner.message_hub.log_scalars:
                values, counts = runner.message_hub.get_scalar(name).data
                series[key] = values
        if not series:
            return ''
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(
            1, len(series), figsize=(5 * len(series), 3.6))
        axes = [axes] if len(series) == 1 else list(axes)
        for ax, (key, values) in zip(axes, series.items()):
            ax.plot(range(1, len(values) + 1), values)
            ax.set_xlabel('iteration')
            ax.set_title(key)
            ax.grid(alpha=0.3)
        fig.suptitle(osp.basename(runner.work_dir))
        fig.tight_layout()
        path = osp.join(runner.work_dir, self.filename)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
