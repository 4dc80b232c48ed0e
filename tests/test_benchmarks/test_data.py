"""mmclip.benchmarks.data: the benchmarks' synthetic captions."""
from mmclip.benchmarks.data import make_benchmark_captions


def test_captions_are_seeded_varied_and_optionally_hard():
    make = make_benchmark_captions
    captions = make(2000, seed=0)
    assert captions == make(2000, seed=0) != make(2000, seed=1)
    assert len(set(captions)) > 1900  # mostly distinct
    assert all(c.isascii() and 3 <= len(c.split()) <= 25 for c in captions)
    hard = make(2000, seed=0, hard_fraction=0.5)
    share = sum(not c.isascii() or '&' in c for c in hard) / len(hard)
    assert 0.4 < share < 0.6
