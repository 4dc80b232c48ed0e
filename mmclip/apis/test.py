"""Evaluating a checkpoint with a config (``tools/test.py``).

Besides the config's metrics this adds two optional outputs:

- ``--out preds.json|preds.pkl``: every sample's ``pred_label``,
  ``pred_score``, ``gt_label`` and ``img_path`` (the
  :class:`DumpPredictions` metric, gathered over ranks);
- ``--show-dir DIR``: PNGs of the first images with their top-k classes
  (:class:`ShowPredictionsHook`).
"""
import json
import os
import os.path as osp
import pickle
from typing import List, Optional, Sequence

import numpy as np
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmclip.registry import METRICS

_OUT_FORMATS = ('.json', '.pkl')


def _plain(value):
    """Tensor/ndarray -> nested Python numbers (JSON- and pickle-safe)."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@METRICS.register_module()
class DumpPredictions(BaseMetric):
    """Write every sample's prediction to ``out_file`` (``.json`` or
    ``.pkl``) as a list of dicts with ``img_path``, ``sample_idx``,
    ``gt_label``, ``pred_label`` and ``pred_score``. Reports no metric.

    Args:
        out_file (str): Output path; the suffix picks the format.
        collect_device (str): Where ranks gather results. Defaults to
            ``'cpu'``.
    """
    default_prefix = 'dump'

    def __init__(self, out_file: str, collect_device: str = 'cpu', **kwargs):
        if osp.splitext(out_file)[1] not in _OUT_FORMATS:
            raise ValueError(f'--out must end in one of {_OUT_FORMATS}, got '
                             f'{out_file!r}.')
        super().__init__(collect_device=collect_device, **kwargs)
        self.out_file = out_file

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            sample = sample if isinstance(sample, dict) else sample.to_dict()
            self.results.append({
                key: _plain(sample[key])
                for key in ('img_path', 'sample_idx', 'gt_label',
                            'pred_label', 'pred_score') if key in sample
            })

    def compute_metrics(self, results: List[dict]) -> dict:
        out_dir = osp.dirname(osp.abspath(self.out_file))
        os.makedirs(out_dir, exist_ok=True)
        if self.out_file.endswith('.json'):
            with open(self.out_file, 'w') as f:
                json.dump(results, f)
        else:
            with open(self.out_file, 'wb') as f:
                pickle.dump(results, f)
        return {}


class ShowPredictionsHook(Hook):
    """Save the first ``max_images`` test images as PNGs with a bar chart
    of their top-k classes (and the ground truth when known), drawn by
    :func:`mmclip.visualization.draw_prediction_panel`. Files are named
    ``{sample_idx:06d}_{file stem}.png``.

    Args:
        out_dir (str): Folder for the PNGs (created).
        max_images (int): Images to draw per rank. Defaults to 16.
        topk (int): Classes listed per image. Defaults to 5.
        min_size (int): Small images are upscaled (nearest) to this side
            length so that they stay visible next to the text. Defaults to
            224.
    """
    priority = 'LOWEST'

    def __init__(self, out_dir: str, max_images: int = 16, topk: int = 5,
                 min_size: int = 224):
        self.out_dir = out_dir
        self.max_images = max_images
        self.topk = topk
        self.min_size = min_size
        self.written: List[str] = []

    def _classnames(self, runner) -> Optional[Sequence[str]]:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        from .inference import model_classes
        return model_classes(model) or (
            runner.test_dataloader.dataset.metainfo.get('classes'))

    def _to_rgb_array(self, runner, img) -> np.ndarray:
        arr = img.detach().cpu().numpy().transpose(1, 2, 0)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        # The pipeline's channel order is whatever the preprocessor flips
        # into RGB (mmcv loads BGR; CIFAR arrays are already RGB).
        if getattr(model.data_preprocessor, 'to_rgb', False):
            arr = arr[..., ::-1]
        return np.ascontiguousarray(arr.clip(0, 255).astype(np.uint8))

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        if len(self.written) >= self.max_images or not outputs:
            return
        from mmclip.visualization import save_prediction_panel
        names = self._classnames(runner)
        for img, sample in zip(data_batch['inputs'], outputs):
            if len(self.written) >= self.max_images:
                break
            scores = sample.pred_score
            labels = [
                names[i] if names is not None and i < len(names) else str(i)
                for i in range(len(scores))
            ]
            gt = None
            if 'gt_label' in sample:
                gt_idx = int(sample.gt_label.reshape(-1)[0])
                gt = labels[gt_idx] if gt_idx < len(labels) else str(gt_idx)
            idx = sample.metainfo.get('sample_idx', len(self.written))
            img_path = sample.metainfo.get('img_path', '') or 'img'
            stem = osp.splitext(osp.basename(img_path))[0]
            path = osp.join(self.out_dir, f'{idx:06d}_{stem}.png')
            save_prediction_panel(
                self._to_rgb_array(runner, img), labels, scores, path,
                topk=self.topk, title=osp.basename(img_path), gt_label=gt,
                min_size=self.min_size)
            self.written.append(path)


def prepare_test_config(config: str,
                        checkpoint: Optional[str],
                        work_dir: Optional[str] = None,
                        out: Optional[str] = None,
                        cfg_options: Optional[dict] = None,
                        launcher: str = 'none') -> Config:
    """Load ``config`` for evaluating ``checkpoint``.

    Args:
        config (str): Config file path.
        checkpoint (str, optional): Weights to load (``cfg.load_from``),
            read with ``weights_only=True``; None evaluates the config's
            initial weights.
        work_dir (str, optional): Logs folder; defaults to
            ``./work_dirs/{config name}``.
        out (str, optional): ``.json`` or ``.pkl`` file for per-sample
            predictions (adds :class:`DumpPredictions`).
        cfg_options (dict, optional): Overrides merged into the config.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        Config: Ready for :func:`test`.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'Config {config!r} does not exist.')
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'Checkpoint {checkpoint!r} does not exist; convert released '
            'weights with tools/model_converters/clip_to_mmclip.py.')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    for key in ('test_dataloader', 'test_evaluator'):
        if not cfg.get(key):
            raise ValueError(f'Config {config} has no `{key}`; use a '
                             'zero-shot config such as configs/clip/'
                             'clip_vit-base-p32_zeroshot-cls_in1k.py.')
    cfg.setdefault('test_cfg', dict())
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(config))[0])
    cfg.load_from = checkpoint
    cfg.resume = False
    if out:
        dump = dict(type='DumpPredictions', out_file=out)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = list(evaluator) + [dump]
        elif 'metrics' in evaluator:  # an explicit Evaluator config
            metrics = evaluator['metrics']
            metrics = list(metrics) if isinstance(metrics, (list, tuple)) \
                else [metrics]
            evaluator['metrics'] = metrics + [dump]
        else:
            cfg.test_evaluator = [evaluator, dump]
    return cfg


def test(cfg: Config, show_dir: Optional[str] = None,
         max_show: int = 16) -> dict:
    """Build the runner from ``cfg``, evaluate, print the metrics.

    Args:
        cfg (Config): From :func:`prepare_test_config`.
        show_dir (str, optional): Folder for annotated PNGs of the first
            ``max_show`` images. Defaults to None.
        max_show (int): Images drawn per rank. Defaults to 16.

    Returns:
        dict: The metrics, e.g. ``{'accuracy/top1': ..., 'accuracy/top5':
        ...}``.
    """
    import mmclip.engine  # noqa: F401 (safe checkpoint loading)
    import mmclip.models  # noqa: F401 (registers the heads)
    import mmclip.datasets  # noqa: F401 (registers the datasets)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = (RUNNERS.build(cfg)
              if 'runner_type' in cfg else Runner.from_cfg(cfg))
    if show_dir:
        runner.register_hook(ShowPredictionsHook(show_dir, max_show))
    metrics = runner.test()
    for key, value in metrics.items():
        print(f'{key}: {value}')
    return metrics
