"""The benchmark's ``index`` row: a folder of JPEGs into a search index by
mmclip (float32 and with the int8 image tower) against the peers encoding
the same files into the same faiss index, in one run."""
import re

from conftest import load_tool


def test_index_rows_run_only_when_named(tmp_path):
    bench = load_tool('benchmarks/benchmark.py')
    assert 'index' not in bench.parse_args([]).rows
    args = bench.parse_args(['--rows', 'folder,index', '--quick',
                             '--libraries', 'open_clip'])
    table = bench.run(args)
    rows = {line.split(' | ')[0].lstrip('| '): line
            for line in table.splitlines() if line.startswith('| folder')}
    assert set(rows) == {
        'folder of JPEGs to label probabilities (img/s)',
        'folder of JPEGs into a search index (img/s)',
        'folder of JPEGs into a search index, mmclip with --int8 (img/s)'}
    for line in rows.values():
        # mmclip's and open_clip's rates and their ratio, all measured
        assert re.search(r'\| [\d.,]+ \| [\d.,]+ \| — \| [\d.]+x \|', line), \
            line
