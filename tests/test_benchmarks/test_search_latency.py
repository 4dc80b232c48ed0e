"""mmclip.benchmarks.search: the query-latency table of the search index
(``tools/benchmarks/benchmark.py --rows search``), at a quick size."""
import numpy as np

from conftest import load_tool
from mmclip.benchmarks.search import (default_index_types, format_search_table,
                                      measure_query_latency,
                                      random_unit_vectors)


def test_default_index_types_scale_with_the_collection():
    assert default_index_types(1_000_000) == [
        ('exact', {}), ('IVF1024,Flat', {'nprobe': 16}),
        ('HNSW32', {'ef_search': 64})]
    assert default_index_types(2000)[1] == ('IVF32,Flat', {'nprobe': 1})
    rows = random_unit_vectors(100, 8, seed=0)
    assert rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-6)


def test_query_latency_rows():
    rows = measure_query_latency(
        vectors=3000, dim=32, queries=64, batch=16, single_queries=4,
        repeats=1, index_types=[('IVF16,Flat', {'nprobe': 16}),
                                ('HNSW16', {'ef_search': 8})])
    assert [row['index'] for row in rows] == [
        'exact', 'IVF16,Flat (nprobe 16)', 'HNSW16 (ef_search 8)']
    assert rows[0]['recall@10'] is None  # the reference
    assert rows[1]['recall@10'] == 1.0  # every list visited: exhaustive
    assert 0 < rows[2]['recall@10'] < 1.0
    for row in rows:
        assert row['build_s'] > 0 and row['ms_per_query_single'] > 0
        assert row['ms_per_query_batch'] > 0
    table = format_search_table(rows, 3000, dim=32, batch=16)
    assert table.splitlines()[0].startswith(
        '| search: 3,000 x 32 random unit vectors, k=10')
    assert '| IVF16,Flat (nprobe 16) |' in table and '| exact |' in table


def test_search_row_runs_only_when_named(tmp_path, capsys):
    bench = load_tool('benchmarks/benchmark.py')
    assert 'search' not in bench.parse_args([]).rows
    args = bench.parse_args(['--rows', 'search', '--quick', '--out',
                             str(tmp_path / 'table.md')])
    assert args.search_vectors == 2000
    assert bench.parse_args(['--rows', 'search', '--search-vectors',
                             '5000']).search_vectors == 5000
    table = bench.run(args)
    assert table.startswith('| search: 2,000 x 512 random unit vectors')
    assert len(table.splitlines()) == 5  # header, rule, three indices
    assert 'IVF32,Flat (nprobe 1)' in table
    assert table in (tmp_path / 'table.md').read_text()
