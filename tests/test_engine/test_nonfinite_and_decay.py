import math

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmclip.engine  # noqa: F401
from conftest import REPO_ROOT
from mmclip.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

SCHEDULE = (f'{REPO_ROOT}/configs/_base_/schedules/'
            'clip_pretrain_adamw_cosine.py')


def test_nonfinite_loss_skips_step_and_keeps_weights():
    model = torch.nn.Linear(3, 1)
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='NonFiniteSkipOptimWrapper',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(4, 3)
    loss = model(x).sum() * float('nan')
    wrapper.update_params(loss)
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)
        assert b.grad is None or not b.grad.any()
    assert wrapper.num_skipped_steps == 1
    wrapper.update_params(model(x).sum())  # a finite loss still steps
    assert not torch.equal(before[0], model.weight)
    assert wrapper.num_skipped_steps == 1


def test_nonfinite_skip_is_logged_with_the_iteration(mm_log):
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('iter', 41)
    model = torch.nn.Linear(3, 1)
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='NonFiniteSkipOptimWrapper',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    wrapper.update_params(model(torch.randn(2, 3)).sum() * float('inf'))
    assert any('Non-finite loss' in m and 'iteration 42' in m
               for m in mm_log)


def test_no_weight_decay_on_norms_biases_embeddings_and_temperature(
        tiny_clip_cfg):
    model = MODELS.build(tiny_clip_cfg)
    cfg = Config.fromfile(SCHEDULE)
    optim_cfg = cfg.optim_wrapper.to_dict()
    optim_cfg['type'] = 'NonFiniteSkipOptimWrapper'  # CPU: no autocast
    optim_cfg.pop('dtype')
    paramwise = optim_cfg.pop('paramwise_cfg')
    with DefaultScope.overwrite_default_scope('mmclip'):
        wrapper = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='DefaultOptimWrapperConstructor',
            optim_wrapper_cfg=optim_cfg, paramwise_cfg=paramwise))(model)
    decay = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[names[id(p)]] = group['weight_decay']
    no_decay = {n for n, d in decay.items() if d == 0}
    for name in decay:
        expected_zero = (name.endswith('bias') or '.ln_' in name
                         or 'embedding' in name or name == 'logit_scale')
        assert (name in no_decay) == expected_zero, name
    assert decay['backbone.transformer.resblocks.0.attn.in_proj_weight'] == 0.2
    assert decay['backbone.proj'] == 0.2
    assert 'text_encoder.token_embedding.weight' in no_decay
    assert 'backbone.positional_embedding' in no_decay


def test_logit_scale_clamped_after_each_step(tiny_clip_cfg):
    from mmclip.engine.hooks import LogitScaleClampHook
    model = MODELS.build(tiny_clip_cfg)
    runner = type('R', (), {'model': model})()
    with torch.no_grad():
        model.logit_scale.fill_(7.)
    LogitScaleClampHook().after_train_iter(runner, 0)
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    with torch.no_grad():
        model.logit_scale.fill_(-1.)
    LogitScaleClampHook().after_train_iter(runner, 0)
    assert model.logit_scale.item() == 0.
