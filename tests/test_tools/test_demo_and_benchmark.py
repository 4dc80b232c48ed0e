import re

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


def test_benchmark_tool_runs_all_rows_side_by_side(capsys):
    bench = load_tool('benchmark.py')
    table, onnx_table = bench.main(['--quick']).split('\n\n')
    rows = [line for line in table.splitlines() if line.startswith('| ')][1:]
    onnx_row = onnx_table.splitlines()[-1]
    assert onnx_row.startswith('| ONNX Runtime vs PyTorch eager, image encode')
    assert onnx_row.endswith('x |') and '—' not in onnx_row
    assert [r.split('|')[1].strip() for r in rows] == [
        'image encode (img/s)', 'text encode (txt/s)',
        'tokenizer (captions/s)', 'zero-shot classifier build (classes/s)',
        'folder of JPEGs to label probabilities (img/s)',
        'train step (samples/s)']
    for row in rows[:2] + rows[4:]:  # every library measured, ratios computed
        assert row.count('x |') == 2 and '—' not in row
