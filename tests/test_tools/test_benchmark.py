"""tools/benchmark*.py and tools/gpu_check.sh: FLOPs and MFU, the rows'
arguments, the DDP/FSDP comparison, and the GPU script (checked here,
never run: CI has no GPU)."""
import os.path as osp
import shlex
import subprocess

import pytest
import torch

from conftest import REPO_ROOT, load_tool

GPU_CHECK = osp.join(REPO_ROOT, 'tools', 'gpu_check.sh')


def test_flops_are_counted_through_fused_attention():
    mfu = load_tool('benchmark_mfu.py')
    linear = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    assert mfu.count_flops(lambda: linear(x)) == 2 * 3 * 8 * 4
    # nn.MultiheadAttention's inference fast path (open_clip's towers) is
    # one fused op the counter does not know; it must still be counted:
    # 4 projections of (2 x 5 tokens, 16 -> 16) + 2 attention products.
    attn = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    q = torch.randn(2, 5, 16)
    expected = 4 * 2 * (2 * 5 * 16 * 16) + 2 * 2 * (2 * 5 * 5 * 16)
    with torch.inference_mode():
        assert mfu.count_flops(
            lambda: attn(q, q, q, need_weights=False)) == expected
    loss = lambda: linear(x).sum().backward()  # noqa: E731
    # Backward adds the weight gradient's product (x needs none).
    assert mfu.count_flops(loss) == 2 * 2 * 3 * 8 * 4


def test_peak_table_picks_the_variant_and_mfu_uses_it(monkeypatch):
    mfu = load_tool('benchmark_mfu.py')
    names = {'NVIDIA H200': 989., 'NVIDIA H200 NVL': 835.,
             'NVIDIA H100 80GB HBM3': 989., 'NVIDIA H100 PCIe': 756.,
             'NVIDIA A100-SXM4-80GB': 312., 'NVIDIA GeForce RTX 4090': None}
    for name, peak in names.items():
        monkeypatch.setattr(torch.cuda, 'get_device_name', lambda *a: name)
        assert mfu.peak_tflops('cuda:0') == peak, name
    assert mfu.peak_tflops('cpu') is None
    assert mfu.peak_tflops('cpu', override=2.5) == 2.5
    # 1e12 FLOPs per call of 100 items at 200 items/s on a 10 TFLOP/s peak.
    row = mfu.flops_row({'a': 200., 'b': None}, {'a': 1e12, 'b': 1e12}, 100,
                        10.)
    assert row == {'a': pytest.approx(20.), 'b': None}
    assert mfu.flops_row({'a': 200.}, {'a': 1e12}, 100, None) == {
        'a': pytest.approx(2000.)}  # GFLOP/s without a peak
    assert mfu.flops_row_name('image encode (img/s)', 989.) == \
        'image encode: MFU (% of 989 TFLOP/s bf16)'


def test_benchmark_arguments():
    bench = load_tool('benchmark.py')
    args = bench.parse_args(['--arch', 'l14', '--rows', 'train,encode',
                             '--libraries', 'open_clip', '--compile'])
    assert (args.arch, args.rows, args.libraries, args.compile) == (
        'l14', ['train', 'encode'], ['mmclip', 'open_clip'], True)
    for bad in (['--rows', 'encode,speed'], ['--libraries', 'timm'],
                ['--arch', 'b8']):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_libraries_build_the_same_architecture_and_flops_are_their_own():
    bench = load_tool('benchmark.py')
    mfu = load_tool('benchmark_mfu.py')
    models = bench.build_models('tiny', bench.LIBRARIES, 'cpu',
                                torch.float32)
    sizes = {name: sum(p.numel() for p in m.parameters())
             for name, m in models.items()}
    assert len(set(sizes.values())) == 1, sizes
    images = torch.randn(2, 3, 32, 32)
    import open_clip
    ids = open_clip.tokenize(bench.make_prompts(2))
    flops = {}
    with torch.inference_mode():
        for name, (image, text) in bench.encoders(models).items():
            flops[name] = (mfu.count_flops(lambda: image(images)),
                           mfu.count_flops(lambda: text(ids)))
    assert len({f[0] for f in flops.values()}) == 1  # same image work
    # mmclip trims the prompts' padded tail: a fraction of the text work.
    assert flops['open_clip'][1] == flops['transformers'][1]
    assert flops['mmclip'][1] < flops['open_clip'][1] / 4


def test_train_rows_with_patch_dropout_count_fewer_flops():
    bench = load_tool('benchmark.py')
    args = bench.parse_args(['--arch', 'tiny', '--grad-ckpt', 'off',
                             '--patch-dropout', '0.5', '--repeats', '1',
                             '--train-batch', '2'])
    models = bench.build_models('tiny', bench.LIBRARIES, 'cpu',
                                torch.float32)
    x = torch.randn(2, 3, 32, 32)
    import open_clip
    ids = open_clip.tokenize(bench.make_prompts(2))
    rows = load_tool('benchmark_train.py').measure_training(
        models, x, ids, args, bench.best_rates, lambda: None, peak=1e-3)
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
    bench = load_tool('benchmark.py')
    strategies = load_tool('benchmark_strategies.py')
    seen = set()
    for argv in steps:
        script = next(a for a in argv if a.startswith('tools/'))
        rest = argv[argv.index(script) + 1:]
        if script == 'tools/benchmark.py':
            args = bench.parse_args(rest)
            seen.update(args.rows)
            assert args.device == 'cuda'
            if args.rows != ['pipeline']:  # the models' rows
                assert args.arch == 'b16' and args.dtype == 'bf16'
        else:
            assert script == 'tools/benchmark_strategies.py'
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
    strategies = load_tool('benchmark_strategies.py')
    results = strategies.main(['--tiny'])
    ddp, fsdp = results['DDP']['losses'], results['FSDP']['losses']
    assert len(ddp) == len(fsdp) == 3
    assert fsdp == pytest.approx(ddp, rel=1e-5)
    assert len(set(ddp)) == 3  # the weights moved
    assert all(r['samples_per_s'] > 0 for r in results.values())
