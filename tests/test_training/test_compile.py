"""torch.compile from the config (mmengine's ``compile``): the compiled
training step gives the eager losses.

mmengine compiles the model's ``train_step`` (data preprocessor, both
towers, the loss; backward and the optimizer step run between the captured
graphs). The backend here is ``aot_eager``: TorchDynamo's capture and
AOTAutograd's forward/backward graphs, as ``inductor`` uses them, without
generating C++ kernels, which takes minutes on this CPU. With ``inductor``
the same run gave the same losses (to 1e-6).
"""
import numpy as np
import pytest
from mmengine.runner import Runner

import mmclip.engine  # noqa: F401
from conftest import tiny_training_config


def train_losses(work_dir, **compile_cfg):
    runner = Runner.from_cfg(tiny_training_config(work_dir, 2, **compile_cfg))
    runner.train()
    return runner.message_hub.get_scalar('train/loss').data[0]


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path):
    import torch._dynamo
    torch._dynamo.reset()
    eager = train_losses(str(tmp_path / 'eager'))
    compiled = train_losses(str(tmp_path / 'compiled'),
                            compile=dict(backend='aot_eager'))
    stats = torch._dynamo.utils.counters['stats']
    assert stats['unique_graphs'] > 0  # the step really went through it
    assert len(eager) == 2 and len(set(eager)) == 2
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    torch._dynamo.reset()
