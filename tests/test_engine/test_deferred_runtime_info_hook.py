"""DeferredRuntimeInfoHook: the message hub gets the same training scalars
as with mmengine's RuntimeInfoHook, but only when something reads them, so
a step needs no host transfer of its logged tensors."""
import numpy as np
from mmengine.runner import Runner

import mmclip.engine  # noqa: F401
from conftest import tiny_training_config


def run(work_dir, runtime_info, logger_interval):
    hooks = dict(runtime_info=dict(type=runtime_info),
                 logger=dict(interval=logger_interval))
    return Runner.from_cfg(
        tiny_training_config(work_dir, 5, default_hooks=hooks))


def history(runner):
    return {key: buf.data[0].tolist()
            for key, buf in runner.message_hub.log_scalars.items()
            if key.startswith('train/') and key != 'train/lr'
            and 'time' not in key}


def test_same_scalars_transferred_once_per_read(tmp_path, monkeypatch):
    reference = run(str(tmp_path / 'ref'), 'RuntimeInfoHook', 1)
    reference.train()
    expected = history(reference)
    assert set(expected) >= {'train/loss', 'train/temperature',
                             'train/i2t_acc'}

    runner = run(str(tmp_path / 'deferred'), 'DeferredRuntimeInfoHook', 2)
    hook = next(h for h in runner.hooks
                if type(h).__name__ == 'DeferredRuntimeInfoHook')
    flushes, updates = [], []
    real_flush, real_update = hook.flush, runner.message_hub.update_scalar
    monkeypatch.setattr(hook, 'flush', lambda r: flushes.append(
        (r.iter, len(hook._pending))) or real_flush(r))
    monkeypatch.setattr(runner.message_hub, 'update_scalar', lambda key, v,
                        *a, **k: updates.append((runner.iter, key, v)) or
                        real_update(key, v, *a, **k))
    runner.train()
    # Logged every 2 iterations and at the last one: 3 transfers (of 2, 2
    # and 1 iterations); the hub gets host floats, only then.
    assert flushes == [(1, 2), (3, 2), (4, 1)]
    losses = [(it, v) for it, key, v in updates if key == 'train/loss']
    assert [it for it, _ in losses] == [1, 1, 3, 3, 4]
    assert all(type(v) is float for _, v in losses)
    got = history(runner)
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        np.testing.assert_allclose(got[key], values, rtol=1e-6)
