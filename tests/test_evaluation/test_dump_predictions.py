"""DumpPredictions: the file it writes, and that configs find it."""
import json
import pickle
import subprocess
import sys

import pytest
import torch
from mmpretrain.structures import DataSample

from conftest import REPO_ROOT
from mmclip.evaluation import DumpPredictions


def _sample(label, scores, path):
    return DataSample(metainfo=dict(img_path=path, sample_idx=label)
                      ).set_gt_label(label).set_pred_score(
                          torch.tensor(scores)).set_pred_label(
                              int(torch.tensor(scores).argmax()))


@pytest.mark.parametrize('suffix', ['.json', '.pkl'])
def test_writes_every_sample(tmp_path, suffix):
    out = tmp_path / 'sub' / f'preds{suffix}'  # missing folders are made
    metric = DumpPredictions(str(out))
    metric.process(None, [
        _sample(2, [0.1, 0.2, 0.7], 'a.png').to_dict(),
        _sample(0, [0.5, 0.3, 0.2], 'b.png'),  # a DataSample as well
    ])
    assert metric.evaluate(2) == {}  # reports no metric
    with open(out, 'rb') as f:
        preds = pickle.load(f) if suffix == '.pkl' else json.load(f)
    assert [p['img_path'] for p in preds] == ['a.png', 'b.png']
    assert [p['sample_idx'] for p in preds] == [2, 0]
    assert [p['gt_label'] for p in preds] == [[2], [0]]
    assert [p['pred_label'] for p in preds] == [[2], [0]]
    assert preds[0]['pred_score'] == pytest.approx([0.1, 0.2, 0.7])


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match=r"\.json.*\.pkl.*'preds\.txt'"):
        DumpPredictions('preds.txt')


def test_config_finds_it_without_mmclip_apis(tmp_path):
    # tools/test.py adds dict(type='DumpPredictions') to a config; any
    # config may name it. mmclip's METRICS registry imports
    # mmclip.evaluation on lookup, which must be enough.
    out = str(tmp_path / 'preds.json')
    code = f'''
import sys
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope

init_default_scope('mmclip')
evaluator = Evaluator([dict(type='Accuracy'),
                       dict(type='DumpPredictions', out_file={out!r})])
print(type(evaluator.metrics[1]).__module__)
print('mmclip.apis' in sys.modules)
'''
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [
        'mmclip.evaluation.metrics.dump_predictions', 'False']
