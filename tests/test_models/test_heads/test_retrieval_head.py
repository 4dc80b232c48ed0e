"""ImageTextRetrievalHead + ImageTextRetrievalMetric end to end."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from PIL import Image

from mmclip.datasets import CocoCaptionDataset, clip_test_pipeline
from mmclip.evaluation import retrieval_metrics
from mmclip.models.heads import ImageTextRetrievalHead
from mmclip.registry import METRICS, MODELS

WORDS = ('red', 'green', 'blue', 'dog', 'cat', 'car', 'tree', 'house')


def write_coco(tmp_path, n_img=5):
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(n_img):
        name = f'{i}.png'
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)
                        ).save(tmp_path / name)
        images.append(dict(id=100 + i, file_name=name))
        # 2 to 4 captions per image: uneven K exercises the split-back.
        for j in range(2 + i % 3):
            anns.append(dict(image_id=100 + i, caption=' '.join(
                rng.choice(WORDS, size=3 + j))))
    ann = tmp_path / 'captions.json'
    ann.write_text(json.dumps(dict(images=images, annotations=anns)))
    return ann


@torch.no_grad()
def direct_metrics(model, dataset):
    """Every image and every caption through the encoders, then ranks."""
    data = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(len(dataset))]), False)
    img = model.encode_image(data['inputs'], normalize=True)
    txt = model.encode_text(dataset.get_all_captions(), normalize=True)
    return retrieval_metrics(img @ txt.t(), dataset.caption_to_image())


def test_head_and_metric_match_direct_computation(tmp_path, tiny_clip_cfg):
    ann = write_coco(tmp_path)
    dataset = CocoCaptionDataset(
        ann_file=str(ann), data_root=str(tmp_path), test_mode=True,
        pipeline=clip_test_pipeline(img_size=32))
    cfg = dict(tiny_clip_cfg,
               predict_head=dict(type='ImageTextRetrievalHead',
                                 text_batch_size=3))
    model = MODELS.build(cfg).eval()
    evaluator = Evaluator(
        METRICS.build(dict(type='ImageTextRetrievalMetric')))
    batches = [[dataset[i] for i in idx] for idx in ([0, 1], [2, 3, 4])]
    with torch.no_grad():
        for batch in batches:
            data = pseudo_collate(batch)
            outputs = model.test_step(data)
            for out, ds in zip(outputs, data['data_samples']):
                k = len(ds.text)
                assert out.image_embed.shape == (32, )
                assert out.text_embeds.shape == (k, 32)
                assert out.gt_text_id.dtype == torch.long
                assert out.image_embed.device.type == 'cpu'
            evaluator.process(outputs, data)
        metrics = evaluator.evaluate(len(dataset))
    expected = direct_metrics(model, dataset)
    assert metrics == pytest.approx(
        {f'retrieval/{k}': v for k, v in expected.items()}, abs=1e-6)
    assert set(expected) >= {'i2t_R@1', 't2i_R@10', 'i2t_median_rank'}


def test_head_without_captions(tiny_clip_cfg):
    model = MODELS.build(tiny_clip_cfg).eval()
    head = ImageTextRetrievalHead(normalize=False)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        img = model.encode_image(images)
    out = head.predict(img, model.text_embedder())
    assert out[0].text_embeds.shape == (0, 32)
    torch.testing.assert_close(torch.stack([o.image_embed for o in out]), img)


def test_head_with_token_ids_and_strings(tiny_clip_cfg):
    """Captions as ``text_ids`` or only as strings, mixed in one batch, in
    chunks smaller than the batch's captions."""
    from mmpretrain.structures import DataSample
    model = MODELS.build(tiny_clip_cfg).eval()
    texts = [['a red car', 'a car'], ['two dogs'], [], ['a cat', 'cat', 'x']]
    samples = [DataSample() for _ in texts]
    samples[0].set_field(model.tokenizer(texts[0]), 'text_ids')
    samples[1].set_field(texts[1][0], 'text')
    samples[3].set_field(texts[3], 'text')
    calls = []
    embedder = model.text_embedder()

    def encode(batch):
        calls.append(len(batch))
        return embedder(batch)

    head = ImageTextRetrievalHead(text_batch_size=2)
    out = head.predict(torch.randn(4, 32), encode, samples)
    assert calls == [2, 2, 2]  # 2 id rows; then 4 strings in chunks of 2
    for sample, caps in zip(out, texts):
        assert sample.text_embeds.shape == (len(caps), 32)
        if caps:
            expected = F.normalize(
                model.encode_text(model.tokenizer(caps)), dim=-1)
            torch.testing.assert_close(sample.text_embeds, expected.detach())


def test_retrieval_config_runs_in_runner(tmp_path, tiny_clip_cfg):
    """The COCO retrieval config, shrunk, through mmengine's test loop."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.runner import Runner

    from conftest import REPO_ROOT
    ann = write_coco(tmp_path)
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'clip',
        'clip_vit-base-p32_retrieval_coco.py'))
    cfg.model = dict(tiny_clip_cfg,
                     predict_head=dict(type='ImageTextRetrievalHead'))
    cfg.test_dataloader.merge(dict(
        batch_size=2, num_workers=0, persistent_workers=False))
    cfg.test_dataloader.dataset.merge(dict(
        data_root=str(tmp_path), ann_file=str(ann),
        pipeline=clip_test_pipeline(img_size=32)))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.logger.interval = 1
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    expected = direct_metrics(runner.model.eval(),
                              runner.test_dataloader.dataset)
    assert metrics == pytest.approx(
        {f'retrieval/{k}': v for k, v in expected.items()}, abs=1e-6)
