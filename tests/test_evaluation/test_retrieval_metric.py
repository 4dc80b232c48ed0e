"""ImageTextRetrievalMetric / retrieval_metrics against brute-force loops."""
import numpy as np
import pytest
import torch

from mmclip.evaluation import ImageTextRetrievalMetric, retrieval_metrics
from mmclip.registry import METRICS


def brute_force(sim, txt_to_img):
    """Pessimistic ranks by plain loops (ties with wrong items count
    against the correct one)."""
    n_img, n_txt = sim.shape
    i2t = []
    for i in range(n_img):
        pos = [t for t in range(n_txt) if txt_to_img[t] == i]
        best = max(sim[i, t] for t in pos)
        i2t.append(1 + sum(1 for t in range(n_txt)
                           if txt_to_img[t] != i and sim[i, t] >= best))
    t2i = []
    for t in range(n_txt):
        gt = txt_to_img[t]
        t2i.append(1 + sum(1 for j in range(n_img)
                           if j != gt and sim[j, t] >= sim[gt, t]))
    out = {}
    for name, ranks in (('i2t', i2t), ('t2i', t2i)):
        for k in (1, 5, 10):
            out[f'{name}_R@{k}'] = 100 * np.mean([r <= k for r in ranks])
        out[f'{name}_mean_rank'] = float(np.mean(ranks))
        out[f'{name}_median_rank'] = float(np.median(ranks))
    return out


def make_case(seed=0, n_img=50, k=5, levels=8):
    rng = np.random.default_rng(seed)
    txt_to_img = np.repeat(np.arange(n_img), k)
    rng.shuffle(txt_to_img)  # captions need not be grouped per image
    sim = rng.normal(size=(n_img, n_img * k))
    sim[txt_to_img, np.arange(n_img * k)] += 1.5  # make it non-trivial
    # Quantise to a few levels so ties are everywhere.
    sim = np.round(sim * levels / 4) / levels
    return sim.astype(np.float32), txt_to_img


@pytest.mark.parametrize('seed', [0, 1])
def test_matches_brute_force_with_ties(seed):
    sim, txt_to_img = make_case(seed)
    # The quantisation must really produce ties with the correct item.
    gt = sim[txt_to_img, np.arange(sim.shape[1])]
    assert (sim == gt[None]).sum() > sim.shape[1]
    expected = brute_force(sim, txt_to_img)
    got = retrieval_metrics(sim, txt_to_img, chunk_size=7)  # odd chunks
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    assert got['rsum'] == pytest.approx(
        sum(v for k, v in expected.items() if '_R@' in k))
    # Same numbers from tensors and without chunking.
    got_t = retrieval_metrics(torch.from_numpy(sim),
                              torch.from_numpy(txt_to_img))
    assert got_t == pytest.approx(got)


def test_tie_rule_is_pessimistic():
    # Image 0 ties its caption with image 1's caption: rank 2, not 1.
    sim = np.array([[1.0, 1.0], [0.0, 2.0]])
    out = retrieval_metrics(sim, [0, 1], topk=(1, ))
    assert out['i2t_R@1'] == 50.0
    assert out['i2t_mean_rank'] == 1.5
    # Caption 0: images 0 and 1 score 1.0 and 0.0 -> rank 1; caption 1 rank 1
    assert out['t2i_R@1'] == 100.0
    # Ties among an image's own captions do not hurt it.
    out = retrieval_metrics(np.array([[1.0, 1.0, 0.0]]), [0, 0, 0])
    assert out['i2t_mean_rank'] == 1.0


def test_input_checks():
    with pytest.raises(ValueError, match='no caption'):
        retrieval_metrics(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match='N_txt'):
        retrieval_metrics(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match='NaN'):
        retrieval_metrics(np.full((1, 1), np.nan), [0])


def test_metric_process_compute_with_padding_duplicate():
    rng = np.random.default_rng(3)
    n_img, k, dim = 6, 3, 8
    img = torch.nn.functional.normalize(
        torch.from_numpy(rng.normal(size=(n_img, dim))).float(), dim=-1)
    txt = torch.nn.functional.normalize(
        torch.from_numpy(rng.normal(size=(n_img * k, dim))).float(), dim=-1)
    metric = METRICS.build(dict(type='ImageTextRetrievalMetric'))
    assert isinstance(metric, ImageTextRetrievalMetric)
    samples = [
        dict(image_embed=img[i], text_embeds=txt[i * k:(i + 1) * k],
             gt_text_id=list(range(i * k, (i + 1) * k)), image_id=i)
        for i in range(n_img)
    ]
    # Out of order, plus a duplicate as a distributed sampler's padding.
    metric.process(None, samples[3:] + samples[:3])
    metric.process(None, samples[:1])
    out = metric.evaluate(size=n_img + 1)
    expected = retrieval_metrics(img @ txt.t(),
                                 np.repeat(np.arange(n_img), k))
    assert out == pytest.approx(
        {f'retrieval/{key}': v for key, v in expected.items()})
