"""NonFiniteSkipAmpOptimWrapper scales the loss for float16 only: bfloat16
needs no loss scaling, so its steps skip the GradScaler (a pass over every
gradient and a host sync per step)."""
import pytest
import torch
from mmengine.optim.optimizer import amp_optimizer_wrapper

import mmclip.engine  # noqa: F401
from mmclip.registry import OPTIM_WRAPPERS


class ScalerSpy:
    """Stands in for the GradScaler; records which of its methods ran."""

    def __init__(self):
        self.calls = []

    def scale(self, loss):
        self.calls.append('scale')
        return loss

    def unscale_(self, optimizer):
        self.calls.append('unscale_')

    def step(self, optimizer, **kwargs):
        self.calls.append('step')
        optimizer.step(**kwargs)

    def update(self, *args):
        self.calls.append('update')


@pytest.mark.parametrize('dtype,scaled', [('bfloat16', False),
                                          ('float16', True)])
def test_loss_scaling_only_for_float16(monkeypatch, dtype, scaled):
    # The wrapper asserts an accelerator; the step itself runs on the CPU.
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    model = torch.nn.Linear(3, 1)
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='NonFiniteSkipAmpOptimWrapper', dtype=dtype,
        clip_grad=dict(max_norm=1.0),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    wrapper.loss_scaler = spy = ScalerSpy()
    before = model.weight.detach().clone()
    wrapper.update_params(model(torch.randn(4, 3)).sum())
    assert not torch.equal(before, model.weight)  # it stepped either way
    assert bool(spy.calls) is scaled
    if scaled:
        assert spy.calls == ['scale', 'unscale_', 'step', 'update']
    # A non-finite loss is still skipped.
    before = model.weight.detach().clone()
    wrapper.update_params(model(torch.randn(4, 3)).sum() * float('nan'))
    assert torch.equal(before, model.weight)
    assert wrapper.num_skipped_steps == 1
