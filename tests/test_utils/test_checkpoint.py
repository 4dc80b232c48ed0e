"""Checkpoints are read as plain data; nothing a file names is executed."""
import argparse

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmclip.utils import (TorchScriptArchiveError, UnsafeCheckpointError,
                          load_checkpoint_file, load_tensors_only,
                          load_weights, unsafe_globals)


class WritesAFileWhenUnpickled:
    """A pickle payload: unpickling it calls ``open(path, 'w')``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


class CallsGetattr:
    """A global in mmengine's HistoryBuffer style: unpickling calls
    ``builtins.getattr`` (here harmlessly, on ``dict``)."""

    def __reduce__(self):
        return (getattr, (dict, 'fromkeys'))


def payload_everywhere(marker):
    """A training checkpoint with payloads at the top level, in ``meta``,
    nested in containers and next to mmengine's and numpy's objects."""
    payload = WritesAFileWhenUnpickled(str(marker))
    return {
        'state_dict': {'w': torch.arange(3.), 'b': torch.ones(2, 2)},
        'meta': {'epoch': 1, 'dataset_meta': {'classes': ['a']},
                 'payload': payload,
                 'nested': [{'deep': (payload, 1)}, {'ok': 2.5}]},
        'message_hub': {'loss': HistoryBuffer([1., 2.], [1, 1])},
        'rng': np.random.get_state(),
        'args': argparse.Namespace(lr=1e-3),
        'getattr': CallsGetattr(),
        'payload': payload,
    }


def test_payload_is_refused_by_name_and_never_executed(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)},
                'payload': WritesAFileWhenUnpickled(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError,
                       match=r'not a plain checkpoint: it names '
                       r'(builtins|io)\.open.*load_weights.*clip_to_mmclip'):
        load_checkpoint_file(str(path))
    assert not marker.exists()


def test_plain_checkpoint_and_safetensors_load(tmp_path):
    from safetensors.torch import save_file
    torch.save({'state_dict': {'w': torch.arange(3.)}, 'meta': {'a': 1}},
               tmp_path / 'ok.pth')
    ckpt = load_checkpoint_file(str(tmp_path / 'ok.pth'))
    assert ckpt['meta'] == {'a': 1}
    assert unsafe_globals(str(tmp_path / 'ok.pth')) == []
    save_file({'w': torch.arange(3.)}, str(tmp_path / 'ok.safetensors'))
    loaded = load_checkpoint_file(str(tmp_path / 'ok.safetensors'))
    assert loaded['w'].sum() == 3


def test_missing_file_and_torchscript_have_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth.*does not exist'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))
    ts = tmp_path / 'openai.pt'
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(ts))
    with pytest.raises(TorchScriptArchiveError, match='TorchScript.*Convert'):
        load_checkpoint_file(str(ts))
    with pytest.raises(TorchScriptArchiveError):
        load_weights(str(ts))


@pytest.mark.parametrize('zipfile', [True, False])
def test_load_weights_of_a_training_checkpoint_runs_nothing(
        tmp_path, zipfile, mm_log):
    # Only the tensors and the plain meta come back; no payload runs, in the
    # zip format and in torch's legacy format alike.
    marker = tmp_path / 'pwned'
    path = tmp_path / 'epoch_1.pth'
    ckpt = payload_everywhere(marker)
    torch.save(ckpt, path, _use_new_zipfile_serialization=zipfile)
    loaded = load_weights(str(path))
    assert not marker.exists()
    assert loaded['meta'] == {'epoch': 1, 'dataset_meta': {'classes': ['a']},
                              'nested': [{'deep': [1]}, {'ok': 2.5}]}
    assert set(loaded['state_dict']) == {'w', 'b'}
    for k, v in ckpt['state_dict'].items():
        assert torch.equal(loaded['state_dict'][k], v)
    # What was refused is named in the log.
    refused = ' '.join(m for m in mm_log if 'not executed' in m)
    for name in ('builtins.getattr', 'HistoryBuffer', 'argparse.Namespace',
                 'numpy'):
        assert name in refused
    # The plain loader refuses it.
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(str(path))


def test_restricted_unpickler_resolves_only_tensor_builders(tmp_path):
    path = tmp_path / 'x.pth'
    torch.save({'w': torch.nn.Parameter(torch.ones(2)), 'd': torch.float16,
                'size': torch.Size([2]), 'g': CallsGetattr()}, path)
    obj, refused = load_tensors_only(str(path))
    assert refused == ['builtins.dict', 'builtins.getattr']
    assert torch.equal(obj['w'], torch.ones(2))
    assert obj['d'] is torch.float16 and obj['size'] == torch.Size([2])
    assert type(obj['g']).__name__ == 'Refused'


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


def test_the_one_private_mmengine_lookup_finds_the_local_loader():
    """mmengine has no public getter for a checkpoint scheme; mmclip reads
    it in one function, and this fails if mmengine renames what it uses."""
    from mmengine.runner.checkpoint import load_from_local

    from mmclip.utils.checkpoint import (load_from_mmclip,
                                         mmclip_checkpoint_loading,
                                         registered_checkpoint_loader)
    assert registered_checkpoint_loader('') is load_from_local
    with mmclip_checkpoint_loading():
        assert registered_checkpoint_loader('work_dirs/x.pth') is \
            load_from_mmclip
    assert registered_checkpoint_loader('') is load_from_local


def test_plain_zip_files_can_be_memory_mapped(tmp_path):
    """The converter's reading of multi-GB files: ``mmap`` maps a zip file
    and is ignored for the legacy format, which cannot be mapped."""
    weights = {'w': torch.arange(6.).reshape(2, 3)}
    torch.save(weights, tmp_path / 'zip.pth')
    torch.save(weights, tmp_path / 'legacy.pth',
               _use_new_zipfile_serialization=False)
    for name in ('zip.pth', 'legacy.pth'):
        loaded = load_checkpoint_file(str(tmp_path / name), mmap=True)
        assert torch.equal(loaded['w'], weights['w'])
