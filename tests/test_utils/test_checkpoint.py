import argparse
import os.path as osp

import pytest
import torch

from mmclip.utils import (UnsafeCheckpointError, load_checkpoint_file,
                          load_weights, trust_checkpoints_in)


class WritesAFileWhenUnpickled:
    """A pickle payload: unpickling it calls ``open(path, 'w')``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_pickle_payload_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)},
                'payload': WritesAFileWhenUnpickled(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError,
                       match='weights_only=True.*clip_to_mmclip'):
        load_checkpoint_file(str(path))
    assert not marker.exists()


def test_plain_checkpoint_and_safetensors_load(tmp_path):
    from safetensors.torch import save_file
    torch.save({'state_dict': {'w': torch.arange(3.)}, 'meta': {'a': 1}},
               tmp_path / 'ok.pth')
    ckpt = load_checkpoint_file(str(tmp_path / 'ok.pth'))
    assert ckpt['meta'] == {'a': 1}
    save_file({'w': torch.arange(3.)}, str(tmp_path / 'ok.safetensors'))
    assert load_checkpoint_file(str(tmp_path / 'ok.safetensors'))['w'].sum() == 3


def test_missing_file_and_torchscript_have_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth.*does not exist'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))
    ts = tmp_path / 'openai.pt'
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(ts))
    with pytest.raises(UnsafeCheckpointError, match='TorchScript.*Convert'):
        load_checkpoint_file(str(ts))


def test_full_state_only_inside_a_trusted_dir(tmp_path):
    run = tmp_path / 'work_dir'
    run.mkdir()
    path = run / 'iter_1.pth'
    torch.save({'state_dict': {}, 'ns': argparse.Namespace(a=1)}, path)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(str(path))
    with trust_checkpoints_in(str(run)):
        assert load_checkpoint_file(str(path))['ns'].a == 1
    # trust ends with the context, and never covers a sibling directory
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(str(path))
    sibling = tmp_path / 'work_dir2'
    sibling.mkdir()
    torch.save({'ns': argparse.Namespace(a=2)}, sibling / 'x.pth')
    with trust_checkpoints_in(str(run)):
        with pytest.raises(UnsafeCheckpointError):
            load_checkpoint_file(osp.join(str(sibling), 'x.pth'))


def test_load_weights_of_a_training_checkpoint_runs_nothing(tmp_path):
    # A full training checkpoint pickles Python objects (mmengine's message
    # hub, numpy RNG state, argparse args; here a payload too): only its
    # tensors and plain meta come back, and the payload never runs.
    import numpy as np
    from mmengine.logging import HistoryBuffer
    marker = tmp_path / 'pwned'
    path = tmp_path / 'epoch_1.pth'
    weights = {'w': torch.arange(3.), 'b': torch.ones(2, 2)}
    torch.save({'state_dict': weights,
                'meta': {'epoch': 1, 'dataset_meta': {'classes': ['a']},
                         'payload': WritesAFileWhenUnpickled(str(marker))},
                'message_hub': {'loss': HistoryBuffer([1., 2.], [1, 1])},
                'rng': np.random.get_state(),
                'args': argparse.Namespace(lr=1e-3),
                'payload': WritesAFileWhenUnpickled(str(marker))}, path)
    loaded = load_weights(str(path))
    assert not marker.exists()
    assert loaded['meta'] == {'epoch': 1, 'dataset_meta': {'classes': ['a']}}
    assert set(loaded['state_dict']) == {'w', 'b'}
    for k, v in weights.items():
        assert torch.equal(loaded['state_dict'][k], v)
    # The strict loader (mmengine's load_from / resume) still refuses it.
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(str(path))


def test_load_weights_refuses_objects_among_the_weights(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1),
                               'x': WritesAFileWhenUnpickled(str(marker))}},
               path)
    with pytest.raises(UnsafeCheckpointError, match="not all tensors.*'x'"):
        load_weights(str(path))
    assert not marker.exists()
    # A plain weights file loads as it is (weights_only=True path).
    torch.save({'w': torch.ones(1)}, tmp_path / 'plain.pth')
    plain = load_weights(str(tmp_path / 'plain.pth'))
    assert plain['meta'] == {} and list(plain['state_dict']) == ['w']
    assert torch.equal(plain['state_dict']['w'], torch.ones(1))
