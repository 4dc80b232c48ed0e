"""tools/benchmark_data.py: the benchmark's synthetic captions."""
from conftest import load_tool


def test_captions_are_seeded_varied_and_optionally_hard():
    make = load_tool('benchmark_data.py').make_benchmark_captions
    captions = make(2000, seed=0)
    assert captions == make(2000, seed=0) != make(2000, seed=1)
    assert len(set(captions)) > 1900  # mostly distinct
    assert all(c.isascii() and 3 <= len(c.split()) <= 25 for c in captions)
    hard = make(2000, seed=0, hard_fraction=0.5)
    share = sum(not c.isascii() or '&' in c for c in hard) / len(hard)
    assert 0.4 < share < 0.6
