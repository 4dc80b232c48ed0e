"""What a user sees of a run while mmengine's full log goes to the work
dir: a progress bar or a few lines, and the results."""
import sys
import time
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from mmclip.registry import HOOKS


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f'{minutes} min {seconds} s' if minutes else f'{seconds} s'


def format_metrics(metrics: dict) -> str:
    """``name value`` pairs, numbers to 4 significant digits."""
    return '  '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}'
                     for k, v in metrics.items())


@HOOKS.register_module()
class ConsoleProgressHook(Hook):
    """Report a run on the console in a few lines (rank 0 only).

    Runs whose console shows only warnings (:func:`mmclip.apis.build_runner`
    with ``console_log_level='WARNING'``, the tools' default) get this hook:
    a line saying where the full log is, the training progress — a live
    bar on a terminal, else a line at each quarter of the run — with the
    loss and the latest validation metrics, and the duration at the end.

    Args:
        stream (file, optional): Where to write. Defaults to ``sys.stdout``.
        bar (bool, optional): A live bar (True) or quarter lines (False);
            None chooses a bar when ``stream`` is a terminal.
    """
    priority = 'LOW'

    def __init__(self, stream=None, bar: Optional[bool] = None):
        self.stream = stream or sys.stdout
        self.bar = bar
        self._bar = None
        self._start = 0.
        self._val = ''
        self._by_epoch = False

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def before_train(self, runner) -> None:
        if not is_main_process():
            return
        self._start = time.monotonic()
        self._by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
        unit = f'{runner.max_epochs} epochs, ' if self._by_epoch else ''
        self._print(f'Training {runner.experiment_name}: {unit}'
                    f'{runner.max_iters} iterations; log: '
                    f'{runner.logger.log_file}')
        self._open_bar(runner.max_iters, runner.iter)

    def _open_bar(self, total: int, initial: int = 0) -> None:
        if self.bar if self.bar is not None else self.stream.isatty():
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=initial, file=self.stream,
                             unit='it', dynamic_ncols=True)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _loss(self, runner) -> str:
        scalars = runner.message_hub.log_scalars
        if 'train/loss' not in scalars:
            return ''
        return f'loss {scalars["train/loss"].current():.4f}'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not is_main_process():
            return
        done = runner.iter + 1
        if self._bar is not None:
            self._bar.update(1)
            if done % 10 == 0 or done == runner.max_iters:
                epoch = f'epoch {runner.epoch + 1} ' if self._by_epoch else ''
                self._bar.set_postfix_str(
                    f'{epoch}{self._loss(runner)}'
                    f'{"  " + self._val if self._val else ""}')
            return
        quarter = runner.max_iters / 4
        if int(done / quarter) > int((done - 1) / quarter):
            epoch = (f'epoch {runner.epoch + 1}/{runner.max_epochs}  '
                     if self._by_epoch else '')
            self._print(f'  {epoch}iter {done}/{runner.max_iters}  '
                        f'{self._loss(runner)}  '
                        f'{_duration(time.monotonic() - self._start)}'
                        f'{"  val: " + self._val if self._val else ""}')

    def after_val_epoch(self, runner, metrics=None) -> None:
        if metrics:
            self._val = format_metrics(metrics)

    def after_train(self, runner) -> None:
        if not is_main_process():
            return
        self._close_bar()
        self._print(f'Trained in {_duration(time.monotonic() - self._start)};'
                    f' checkpoints in {runner.work_dir}'
                    f'{"; val: " + self._val if self._val else ""}')

    def before_test(self, runner) -> None:
        if is_main_process():
            self._open_bar(len(runner.test_dataloader))

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def after_test(self, runner) -> None:
        self._close_bar()
