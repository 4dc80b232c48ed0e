import re

import pytest

from conftest import load_tool


def test_demo_scores_the_real_photo_and_says_weights_are_random(capsys):
    demo = load_tool('demo.py')
    assert demo.main(['--skip-digits']) == 0
    out = capsys.readouterr().out
    assert 'scikit-image chelsea 451x300 -> (224, 224)' in out
    probs = [float(m) for m in re.findall(r'^a photo of .*?\s(\d\.\d{4})$',
                                          out, flags=re.M)]
    assert len(probs) == len(demo.PROMPTS)
    assert abs(sum(probs) - 1) < 2e-3
    assert 'RANDOM' in out
    # "a photo of a cat" encodes as OpenAI's ids: SOT a photo of a cat EOT
    assert '[49406, 320, 1125, 539, 320, 2368, 49407, 0]' in out


@pytest.mark.slow
def test_benchmark_tool_runs_all_rows_side_by_side(tmp_path):
    bench = load_tool('benchmarks/benchmark.py')
    out = tmp_path / 'table.md'
    text = bench.run(bench.parse_args(['--quick', '--out', str(out)]))
    assert out.read_text().endswith(text + '\n')  # after the header line
    table, onnx_table, int8_table = text.split('\n\n')
    rows = {r.split(' | ')[0][2:]: r.split(' | ')[1:]
            for r in table.splitlines()[2:]}
    onnx_row = onnx_table.splitlines()[-1]
    assert onnx_row.startswith('| ONNX Runtime vs PyTorch eager, image encode')
    assert onnx_row.endswith('x |') and '—' not in onnx_row
    int8_row = int8_table.splitlines()[-1]
    assert int8_row.startswith('| int8 image tower vs fp32 image encode')
    assert int8_row.endswith('x |') and '—' not in int8_row
    assert list(rows) == [
        'image encode (img/s)', 'image encode: achieved GFLOP/s',
        'text encode (txt/s)', 'text encode: achieved GFLOP/s',
        'tokenizer (captions/s)', 'zero-shot classifier build (classes/s)',
        'folder of JPEGs to label probabilities (img/s)',
        'train step (samples/s)', 'train step: achieved GFLOP/s',
        'train step: peak memory of the step (GiB)',
        'train step, grad ckpt (samples/s)',
        'train step, grad ckpt: achieved GFLOP/s',
        'train step, grad ckpt: peak memory of the step (GiB)',
        'training input pipeline, 1 worker (samples/s)',
        'training input pipeline, JPEGs left for the device, 1 worker '
        '(samples/s)',
        'JPEG decode + crop + normalise on cpu (img/s)']
    for name, cells in rows.items():
        libraries, ratios = cells[:3], cells[3:]
        if 'GFLOP/s' in name:  # every library's own FLOPs, no ratio
            assert '—' not in libraries and ratios == ['—', '— |']
        elif 'GiB' in name:  # CUDA only
            assert libraries == ['n/a'] * 3
        elif name.startswith(('image', 'text', 'folder', 'train step')):
            assert '—' not in cells  # every library measured, ratios too
        elif 'device' in name or 'decode' in name:  # mmclip only
            assert '—' not in cells[0] and cells[1:] == ['—'] * 3 + ['— |']
        else:  # mmclip vs open_clip only
            assert '—' not in cells[:2] + cells[3:4]
