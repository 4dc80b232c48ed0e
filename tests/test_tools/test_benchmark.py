"""tools/benchmarks/: the rows' arguments, the same architecture from every
library, the train rows, the DDP/FSDP comparison, and the GPU script
(checked here, never run: CI has no GPU)."""
import os.path as osp
import shlex
import subprocess

import pytest
import torch

from conftest import REPO_ROOT, load_tool
from mmclip.benchmarks.flops import count_flops
from mmclip.benchmarks.peers import (LIBRARIES, build_models, encoders,
                                     make_prompts)
from mmclip.benchmarks.train_step import measure_training

GPU_CHECK = osp.join(REPO_ROOT, 'tools', 'benchmarks', 'gpu_check.sh')


def test_benchmark_arguments():
    bench = load_tool('benchmarks/benchmark.py')
    args = bench.parse_args(['--arch', 'l14', '--rows', 'train,encode',
                             '--libraries', 'open_clip', '--compile'])
    assert (args.arch, args.rows, args.libraries, args.compile) == (
        'l14', ['train', 'encode'], ['mmclip', 'open_clip'], True)
    for bad in (['--rows', 'encode,speed'], ['--libraries', 'timm'],
                ['--arch', 'b8']):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_libraries_build_the_same_architecture_and_flops_are_their_own():
    models = build_models('tiny', LIBRARIES, 'cpu', torch.float32)
    sizes = {name: sum(p.numel() for p in m.parameters())
             for name, m in models.items()}
    assert len(set(sizes.values())) == 1, sizes
    images = torch.randn(2, 3, 32, 32)
    import open_clip
    ids = open_clip.tokenize(make_prompts(2))
    flops = {}
    with torch.inference_mode():
        for name, (image, text) in encoders(models).items():
            flops[name] = (count_flops(lambda: image(images)),
                           count_flops(lambda: text(ids)))
    assert len({f[0] for f in flops.values()}) == 1  # same image work
    # mmclip trims the prompts' padded tail: a fraction of the text work.
    assert flops['open_clip'][1] == flops['transformers'][1]
    assert flops['mmclip'][1] < flops['open_clip'][1] / 4


def test_train_rows_with_patch_dropout_count_fewer_flops():
    bench = load_tool('benchmarks/benchmark.py')
    args = bench.parse_args(['--arch', 'tiny', '--grad-ckpt', 'off',
                             '--patch-dropout', '0.5', '--repeats', '1',
                             '--train-batch', '2'])
    models = build_models('tiny', LIBRARIES, 'cpu', torch.float32)
    x = torch.randn(2, 3, 32, 32)
    import open_clip
    ids = open_clip.tokenize(make_prompts(2))
    rows = measure_training(models, x, ids, args, lambda: None, peak=1e-3)
    assert list(rows) == [
        'train step (samples/s)',
        'train step: MFU (% of 0.001 TFLOP/s bf16)',
        'train step: peak memory of the step (GiB)',
        'train step, patch dropout 0.5 (samples/s)',
        'train step, patch dropout 0.5: MFU (% of 0.001 TFLOP/s bf16)']
    dropped = rows['train step, patch dropout 0.5 (samples/s)']
    assert set(dropped) == {'mmclip', 'open_clip'}  # transformers has none
    # MFU / rate = FLOPs per sample: fewer with half the patches dropped
    # (here the 77-token text tower does most of the work).
    full, half = (rows[f'train step{s}: MFU (% of 0.001 TFLOP/s bf16)']
                  for s in ('', ', patch dropout 0.5'))
    for name in dropped:
        per_sample = full[name] / rows['train step (samples/s)'][name]
        assert half[name] / dropped[name] < 0.97 * per_sample
    # The models are back to their plain training configuration.
    assert models['mmclip'].backbone.patch_dropout == 0


def gpu_check_steps(*args):
    out = subprocess.run(['bash', GPU_CHECK, *args], capture_output=True,
                         text=True, check=True, cwd=REPO_ROOT).stdout
    return [shlex.split(line.split('] ', 1)[1])
            for line in out.splitlines() if line.startswith('+ [')]


def test_gpu_check_script_parses_and_every_step_is_a_valid_command():
    subprocess.run(['bash', '-n', GPU_CHECK], check=True)
    steps = gpu_check_steps('--dry-run')
    bench = load_tool('benchmarks/benchmark.py')
    strategies = load_tool('benchmarks/benchmark_strategies.py')
    seen = set()
    for argv in steps:
        script = next(a for a in argv if a.startswith('tools/'))
        rest = argv[argv.index(script) + 1:]
        if script == 'tools/benchmarks/benchmark.py':
            args = bench.parse_args(rest)
            seen.update(args.rows)
            assert args.device == 'cuda'
            if args.rows != ['pipeline']:  # the models' rows
                assert args.arch == 'b16' and args.dtype == 'bf16'
        else:
            assert script == 'tools/benchmarks/benchmark_strategies.py'
            assert strategies.parse_args(rest).iters == 20
            seen.add('strategies')
    assert seen == {'encode', 'zero-shot', 'train', 'pipeline', 'strategies'}
    flat = [' '.join(argv) for argv in steps]
    assert any('--image-batch 512' in s and '--zs-classes 1000' in s
               for s in flat)
    assert any('--train-batch 256' in s and '--grad-ckpt both' in s
               and '--patch-dropout 0.5' in s for s in flat)
    assert any('--train-batch 256' in s and '--compile' in s for s in flat)
    bad = subprocess.run(['bash', GPU_CHECK, '--bogus'], capture_output=True)
    assert bad.returncode == 2


def test_ddp_and_fsdp_configs_train_the_same_batches_to_the_same_losses():
    """Both pretraining configs build their runners (mmengine's Runner with
    DDP; FlexibleRunner with FSDPStrategy), in a process group of one on the
    CPU, and train 3 iterations of a tiny model from the same weights on
    the same batches: fp32 here, so the losses are equal."""
    strategies = load_tool('benchmarks/benchmark_strategies.py')
    results = strategies.run(strategies.parse_args(['--tiny']))
    ddp, fsdp = results['DDP']['losses'], results['FSDP']['losses']
    assert len(ddp) == len(fsdp) == 3
    assert fsdp == pytest.approx(ddp, rel=1e-5)
    assert len(set(ddp)) == 3  # the weights moved
    assert all(r['samples_per_s'] > 0 for r in results.values())


@pytest.mark.slow
def test_accumulated_step_memory_stays_near_one_micro_batch():
    """The accum table (three fresh processes, tiny model): 4 x 64
    accumulated peaks near one batch of 64, well below one batch of 256."""
    from mmclip.benchmarks.accumulation import (format_accumulation_table,
                                                measure_accumulation)
    bench = load_tool('benchmarks/benchmark.py')
    args = bench.parse_args(['--rows', 'accum', '--arch', 'tiny',
                             '--train-batch', '64', '--accum-steps', '4',
                             '--repeats', '1'])
    results = measure_accumulation(args)
    table = format_accumulation_table(results, 'cpu')
    print(table)
    small, accumulated, big = (r['peak_bytes'] for r in results.values())
    assert [(r['batch'], r['micro_batch']) for r in results.values()] == [
        (64, 64), (256, 64), (256, 256)]
    assert accumulated - small < (big - small) / 4, table
    assert '| 4 x 64 accumulated (accum_steps=4) | 256 | 64 |' in table
