"""AMP recipes and ``--amp`` run without a GPU: bf16 autocast where the
CPU has native bf16, float32 with one warning where it has not."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from conftest import REPO_ROOT, tiny_training_config
from mmclip.engine.optimizers import cpu_amp
from mmclip.engine.optimizers.cpu_amp import (CPUAmpOptimWrapper,
                                              amp_wrapper_for_cpu,
                                              cpu_has_native_bf16)

no_gpu = pytest.mark.skipif(torch.cuda.is_available(),
                            reason='checks the CPU path; this machine has '
                            'a GPU')

CPUINFO = {
    'sapphire_rapids': 'flags\t\t: fpu sse avx2 avx512f avx512_bf16 '
                       'amx_bf16 amx_tile\n',
    'cooper_lake': 'flags\t\t: fpu avx2 avx512f avx512_bf16\n',
    'epyc_zen2': 'flags\t\t: fpu sse avx avx2 fma\n',
    'graviton3': 'Features\t: fp asimd sve bf16 i8mm\n',
    'graviton2': 'Features\t: fp asimd atomics\n',
}


@pytest.mark.parametrize('cpu,native', [
    ('sapphire_rapids', True), ('cooper_lake', True), ('epyc_zen2', False),
    ('graviton3', True), ('graviton2', False)])
def test_native_bf16_from_cpuinfo(cpu, native, tmp_path):
    path = tmp_path / 'cpuinfo'
    path.write_text('processor\t: 0\n' + CPUINFO[cpu])
    assert cpu_has_native_bf16(str(path)) is native


def test_unreadable_cpuinfo_means_float32(tmp_path):
    assert cpu_has_native_bf16(str(tmp_path / 'missing')) is False


@pytest.mark.parametrize('wrapper,cpu_type', [
    ('AmpOptimWrapper', 'CPUAmpOptimWrapper'),
    ('NonFiniteSkipAmpOptimWrapper', 'NonFiniteSkipCPUAmpOptimWrapper')])
def test_amp_wrappers_swap_without_accelerator(wrapper, cpu_type,
                                               monkeypatch):
    monkeypatch.setattr(cpu_amp, 'accelerator_available', lambda: False)
    cfg = dict(type=wrapper, dtype='bfloat16')
    assert amp_wrapper_for_cpu(cfg) == wrapper
    assert cfg == dict(type=cpu_type, dtype='bfloat16')
    monkeypatch.setattr(cpu_amp, 'accelerator_available', lambda: True)
    cfg = dict(type=wrapper, cpu_bf16=False)  # CPU-only: gone on a GPU
    assert amp_wrapper_for_cpu(cfg) is None and cfg == dict(type=wrapper)


def test_plain_wrappers_are_left_alone(monkeypatch):
    monkeypatch.setattr(cpu_amp, 'accelerator_available', lambda: False)
    for wrapper in ('OptimWrapper', 'NonFiniteSkipOptimWrapper'):
        cfg = dict(type=wrapper)
        assert amp_wrapper_for_cpu(cfg) is None and cfg['type'] == wrapper


@no_gpu
def test_mmengine_amp_wrapper_asserts_on_cpu():
    """What the swap is for: mmengine's wrapper cannot be built here."""
    from mmengine.optim import AmpOptimWrapper
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(AssertionError, match='only available'):
        AmpOptimWrapper(optimizer=optimizer, dtype='bfloat16')


def _wrapper(**kwargs):
    model = nn.Linear(8, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, CPUAmpOptimWrapper(optimizer=optimizer, **kwargs)


def test_bf16_autocast_where_native(mm_log):
    model, wrapper = _wrapper(dtype='bfloat16', cpu_bf16=True)
    assert wrapper.cast_dtype is torch.bfloat16
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 8))
    assert out.dtype is torch.bfloat16
    loss = out.float().sum()
    wrapper.update_params(loss)  # no loss scaling: a plain step
    assert not any('float32' in m for m in mm_log)


@pytest.mark.parametrize('kwargs', [
    dict(dtype='bfloat16', cpu_bf16=False), dict(dtype='float16',
                                                 cpu_bf16=True)])
def test_float32_with_one_warning_elsewhere(kwargs, mm_log):
    model, wrapper = _wrapper(**kwargs)
    assert wrapper.cast_dtype is None
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 8))
    assert out.dtype is torch.float32
    warnings = [m for m in mm_log if 'training in float32' in m]
    assert len(warnings) == 1, mm_log
    assert ('no native bfloat16' in warnings[0]
            if kwargs['dtype'] == 'bfloat16' else 'torch.float16'
            in warnings[0])


def test_resumes_a_gpu_runs_optimizer_state():
    model, wrapper = _wrapper(dtype='bfloat16', cpu_bf16=False)
    state = wrapper.state_dict()
    state['loss_scaler'] = {'scale': 65536.0, '_growth_tracker': 0}
    wrapper.load_state_dict(state)  # no error: the scaler state is dropped
    assert wrapper.optimizer.param_groups[0]['lr'] == 0.1


@no_gpu
def test_runner_trains_an_amp_config_on_cpu(tmp_path, mm_log):
    from mmclip.engine import build_runner
    cfg = tiny_training_config(
        str(tmp_path), iters=2,
        optim_wrapper=dict(type='NonFiniteSkipAmpOptimWrapper',
                           dtype='bfloat16'))
    runner = build_runner(cfg)
    runner.train()
    assert type(runner.optim_wrapper).__name__ == \
        'NonFiniteSkipCPUAmpOptimWrapper'
    assert runner.iter == 2
    expected = (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert runner.optim_wrapper.cast_dtype is expected


@no_gpu
@pytest.mark.slow
def test_train_tool_amp_on_cpu(tmp_path):
    """``tools/train.py CONFIG --amp`` from a fresh folder trains two
    iterations of the digits recipe on this CPU."""
    root = tmp_path / 'digits'
    subprocess.run([sys.executable, osp.join(
        REPO_ROOT, 'tools', 'dataset_converters', 'prepare_digits.py'),
        str(root)], check=True, capture_output=True, cwd=tmp_path)
    config = osp.join(REPO_ROOT, 'configs', 'clip',
                      'clip_vit-tiny-p8_1xb32-24e_digits-32px.py')
    done = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
         '--amp', '--work-dir', 'work', '--cfg-options',
         f'train_dataloader.dataset.data_root={root}',
         'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=64'],
        capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'Traceback' not in done.stderr
    log = ''.join(open(p).read() for p in (tmp_path / 'work').glob('*/*.log'))
    assert ('bfloat16 autocast' in log if cpu_has_native_bf16() else
            'training in float32' in log), log[-2000:]
