"""Threads fitted to a shared machine, and a warning when a run slows
down (mmclip.engine.threads, CPUThreadsHook)."""
from types import SimpleNamespace

import pytest
import torch

from mmclip.engine import threads as threads_module
from mmclip.engine.hooks import CPUThreadsHook, cpu_threads_hook
from mmclip.engine.threads import choose_num_threads, configure_threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize('load,own,expected', [
    (0.1, 0., 4),   # quiet machine: every core
    (2.0, 2.0, 4),  # the load is this process's own
    (2.2, 0., 2),   # another job keeps two cores busy
    (4.6, 0.5, 1),  # more than the machine: still one thread
    (None, 0., 4),  # no load average on this platform: the cap
])
def test_threads_fit_the_cores_others_leave(load, own, expected):
    assert choose_num_threads(load, own, cpus=4, cap=4) == expected


def test_the_cap_bounds_threads(monkeypatch):
    monkeypatch.setattr(threads_module, 'usable_cpus', lambda: 8)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # tools/dist_train.sh's
    assert threads_module.thread_cap() == 1
    assert choose_num_threads(0.) == 1
    monkeypatch.setenv('OMP_NUM_THREADS', 'lots')  # unreadable: the cores
    assert threads_module.thread_cap() == 8


def test_configure_threads():
    assert configure_threads(1) == 1 == torch.get_num_threads()
    assert configure_threads('1') == 1
    assert 1 <= configure_threads('auto') <= threads_module.thread_cap()
    for bad in (0, -2, 'many'):
        with pytest.raises(ValueError, match="positive number or 'auto'"):
            configure_threads(bad)


def _runner():
    return SimpleNamespace(iter=41, model=torch.nn.Linear(2, 2))


def test_hook_follows_the_load(monkeypatch, mm_log):
    monkeypatch.setattr(threads_module, 'usable_cpus', lambda: 2)
    monkeypatch.setattr(threads_module, 'thread_cap', lambda: 2)
    monkeypatch.setattr(cpu_threads_hook, 'usable_cpus', lambda: 2)
    load = [4.0]
    monkeypatch.setattr(cpu_threads_hook, 'machine_load', lambda: load[0])
    torch.set_num_threads(2)
    hook = CPUThreadsHook(interval=0.)
    runner = _runner()
    hook.before_run(runner)
    hook.after_train_iter(runner, 0)
    assert torch.get_num_threads() == 1  # another job took the cores
    load[0] = 0.2
    hook.after_test_iter(runner, 0)
    assert torch.get_num_threads() == 2  # and left
    assert sum('PyTorch threads instead of' in m for m in mm_log) == 2


def test_fixed_threads_are_kept(monkeypatch):
    monkeypatch.setattr(cpu_threads_hook, 'machine_load', lambda: 50.)
    torch.set_num_threads(2)
    hook = CPUThreadsHook(adapt=False, interval=0.)
    runner = _runner()
    hook.before_run(runner)
    hook.after_train_iter(runner, 0)
    assert torch.get_num_threads() == 2


def test_warns_once_when_iterations_slow_down(monkeypatch, mm_log):
    monkeypatch.setattr(cpu_threads_hook, 'machine_load', lambda: 4.2)
    hook = CPUThreadsHook(adapt=False, window=4, slow_factor=3.)
    runner = _runner()
    hook.before_run(runner)

    def warnings():
        return [m for m in mm_log if 'slower than' in m]

    for seconds in [0.7] * 8 + [1.5] * 4:  # 2x: not far slower
        hook.record_iteration(runner, seconds)
    assert not warnings()
    for seconds in [3.2] * 8:  # 4.6x: one warning, not one per iteration
        hook.record_iteration(runner, seconds)
    assert len(warnings()) == 1
    # the median of the window that first passed 3x: (1.5 + 3.2) / 2
    assert '3.4x slower than the 0.70 s' in warnings()[0]
    assert 'load 4.2' in warnings()[0]
    for seconds in [0.7] * 4 + [3.2] * 4:  # recovered, then slow again
        hook.record_iteration(runner, seconds)
    assert len(warnings()) == 2


@pytest.mark.parametrize('randomness,threads,adapts', [
    (dict(seed=0), 'auto', True),
    (dict(seed=0, deterministic=True), 'auto', False),  # fixed: the cap
    (dict(seed=0), 1, False),
])
def test_build_runner_threads(randomness, threads, adapts, tmp_path,
                              monkeypatch):
    from conftest import tiny_training_config
    from mmclip.engine import build_runner
    from mmclip.engine import runner as runner_module
    monkeypatch.setattr(runner_module, 'thread_cap', lambda: 2)
    monkeypatch.setattr(threads_module, 'machine_load', lambda: 9.)  # busy
    cfg = tiny_training_config(str(tmp_path), iters=1, cpu_threads=threads,
                               randomness=randomness)
    runner = build_runner(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, CPUThreadsHook))
    assert hook.adapt is adapts
    assert torch.get_num_threads() == {'auto': 1, 1: 1}.get(
        threads) if adapts or threads == 1 else 2
