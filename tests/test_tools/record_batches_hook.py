"""A hook that writes, per process, every training iteration's image paths
and loss to ``{work_dir}/batches_rank{RANK}.jsonl``, so a test can check
which samples each rank trained on and compare losses across runs."""
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmclip.registry import HOOKS


@HOOKS.register_module()
class RecordBatchesHook(Hook):

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        record = dict(
            iter=runner.iter + 1,
            img_paths=[s.img_path for s in data_batch['data_samples']],
            loss=outputs['loss'].item())
        path = osp.join(runner.work_dir, f'batches_rank{get_rank()}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(record) + '\n')
