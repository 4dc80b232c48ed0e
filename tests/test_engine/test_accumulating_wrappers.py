"""``build_runner`` gives a model with ``accum_steps > 1`` mmclip's
accumulating DDP/FSDP wrapper (mmengine's never call the model's
``train_step``), keeping the wrapper's settings, and refuses wrappers that
cannot run it."""
import uuid

import pytest
from mmengine.config import Config

from mmclip.engine.runner import use_accumulating_wrappers
from mmclip.errors import ConfigError

DDP = 'AccumulatingDistributedDataParallel'
FSDP = 'AccumulatingFullyShardedDataParallel'


def config(accum_steps=4, **kwargs):
    return Config(dict(model=dict(type='CLIPModel', accum_steps=accum_steps),
                       **kwargs))


def test_runner_default_wrapper():
    cfg = config(find_unused_parameters=True)
    use_accumulating_wrappers(cfg)
    # What Runner.wrap_model builds by default, with the accumulating type.
    assert cfg.model_wrapper_cfg == dict(type=DDP, broadcast_buffers=False,
                                         find_unused_parameters=True)


def test_a_configured_ddp_wrapper_keeps_its_settings():
    # as mmclip.apis.launch sets it for CPU runs
    cfg = config(model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                        device_ids=None, static_graph=True))
    use_accumulating_wrappers(cfg)
    assert cfg.model_wrapper_cfg == dict(type=DDP, device_ids=None,
                                         static_graph=True)


@pytest.mark.parametrize('strategy,expected', [
    (dict(type='FSDPStrategy', model_wrapper=dict(use_orig_params=True)),
     dict(type=FSDP, use_orig_params=True)),
    (dict(type='DDPStrategy'), dict(type=DDP)),
])
def test_flexible_runner_strategies(strategy, expected):
    cfg = config(runner_type='FlexibleRunner', strategy=strategy)
    use_accumulating_wrappers(cfg)
    assert cfg.strategy.model_wrapper == expected


def test_the_fsdp_config_gets_the_accumulating_wrapper():
    from conftest import REPO_ROOT
    cfg = Config.fromfile(
        f'{REPO_ROOT}/configs/clip/clip_vit-base-p16_8xb512-amp-fsdp-32e_'
        'cc3m.py')
    cfg.merge_from_dict({'model.accum_steps': 4})
    use_accumulating_wrappers(cfg)
    assert cfg.strategy.model_wrapper.type == FSDP
    assert cfg.strategy.model_wrapper.use_orig_params is True


@pytest.mark.parametrize('cfg', [
    config(accum_steps=1),  # nothing to do
    config(model_wrapper_cfg=dict(type=DDP)),  # already
    config(runner_type='FlexibleRunner'),  # one process: no wrapper
])
def test_left_alone(cfg):
    before = cfg.to_dict()
    use_accumulating_wrappers(cfg)
    assert cfg.to_dict() == before


@pytest.mark.parametrize('cfg,named', [
    (config(runner_type='FlexibleRunner',
            strategy=dict(type='DeepSpeedStrategy')), "'DeepSpeedStrategy'"),
    (config(model_wrapper_cfg=dict(
        type='MMSeparateDistributedDataParallel')),
     "'MMSeparateDistributedDataParallel'"),
])
def test_wrappers_that_cannot_run_the_step(cfg, named):
    with pytest.raises(ConfigError, match=f'accum_steps=4.*{named}'):
        use_accumulating_wrappers(cfg)


def test_ddp_and_fsdp_configs_accumulate_through_build_runner(tmp_path):
    """The DDP config (Runner) and the FSDP config (FlexibleRunner,
    FSDPStrategy) with accum_steps=4, built by build_runner in a process
    group of one on the CPU (tiny model, the benchmark's synthetic
    batches): the same losses as without accumulation, iteration by
    iteration."""
    from conftest import load_tool
    from mmclip.engine import build_runner
    strategies = load_tool('benchmarks/benchmark_strategies.py')
    args = strategies.parse_args(['--tiny', '--iters', '3'])
    losses = {}
    with strategies.process_group(args.device):
        weights = strategies.save_initial_weights(args,
                                                  str(tmp_path / 'init.pth'))
        for name in strategies.CONFIGS:
            for accum_steps in (1, 4):
                cfg = strategies.build_config(
                    name, args, str(tmp_path / f'{name}{accum_steps}'),
                    weights)
                cfg.model.accum_steps = accum_steps
                # one message hub per runner (mmengine names them by time)
                cfg.experiment_name = f'{name}{accum_steps}_{uuid.uuid4().hex}'
                runner = build_runner(cfg)
                runner.train()
                assert type(runner.model).__name__.startswith(
                    'Accumulating') == (accum_steps > 1)
                losses[name, accum_steps] = runner.message_hub.get_scalar(
                    'train/loss').data[0]
    for name in strategies.CONFIGS:
        assert losses[name, 4] == pytest.approx(losses[name, 1], abs=1e-6)
        assert len(set(losses[name, 1])) == 3  # the weights moved
