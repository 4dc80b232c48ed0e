"""mmclip.benchmarks.flops: FLOPs counted through fused attention, the
devices' peaks and the MFU rows."""
import pytest
import torch

from mmclip.benchmarks.flops import (count_flops, flops_row, flops_row_name,
                                     peak_tflops)


def test_flops_are_counted_through_fused_attention():
    linear = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    assert count_flops(lambda: linear(x)) == 2 * 3 * 8 * 4
    # nn.MultiheadAttention's inference fast path (open_clip's towers) is
    # one fused op the counter does not know; it must still be counted:
    # 4 projections of (2 x 5 tokens, 16 -> 16) + 2 attention products.
    attn = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    q = torch.randn(2, 5, 16)
    expected = 4 * 2 * (2 * 5 * 16 * 16) + 2 * 2 * (2 * 5 * 5 * 16)
    with torch.inference_mode():
        assert count_flops(
            lambda: attn(q, q, q, need_weights=False)) == expected
    loss = lambda: linear(x).sum().backward()  # noqa: E731
    # Backward adds the weight gradient's product (x needs none).
    assert count_flops(loss) == 2 * 2 * 3 * 8 * 4


def test_peak_table_picks_the_variant_and_mfu_uses_it(monkeypatch):
    names = {'NVIDIA H200': 989., 'NVIDIA H200 NVL': 835.,
             'NVIDIA H100 80GB HBM3': 989., 'NVIDIA H100 PCIe': 756.,
             'NVIDIA A100-SXM4-80GB': 312., 'NVIDIA GeForce RTX 4090': None}
    for name, peak in names.items():
        monkeypatch.setattr(torch.cuda, 'get_device_name', lambda *a: name)
        assert peak_tflops('cuda:0') == peak, name
    assert peak_tflops('cpu') is None
    assert peak_tflops('cpu', override=2.5) == 2.5
    # 1e12 FLOPs per call of 100 items at 200 items/s on a 10 TFLOP/s peak.
    row = flops_row({'a': 200., 'b': None}, {'a': 1e12, 'b': 1e12}, 100, 10.)
    assert row == {'a': pytest.approx(20.), 'b': None}
    assert flops_row({'a': 200.}, {'a': 1e12}, 100, None) == {
        'a': pytest.approx(2000.)}  # GFLOP/s without a peak
    assert flops_row_name('image encode (img/s)', 989.) == \
        'image encode: MFU (% of 989 TFLOP/s bf16)'
