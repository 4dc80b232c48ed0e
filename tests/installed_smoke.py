"""Smoke run of an installed mmclip, for tests/test_requirements.py, which
runs it with the interpreter of a fresh environment from outside the
checkout (so ``import mmclip`` is the installed package).

Zero-shot scores with a named model (its config from the package's
``.mim``, through mmpretrain's and mmcv's transforms, which import
torchvision), one training step of the contrastive loss through mmengine's
optimizer wrapper, and a checkpoint read back with mmclip's loader that
scans it before loading (``torch.serialization``'s
``get_unsafe_globals_in_checkpoint``). Prints ``smoke ok`` at the end.
"""
import sys

import numpy as np
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

import mmclip
from mmclip.apis import get_model, inference_model
from mmclip.utils import load_weights, unsafe_globals

DIGITS = ('zero', 'one', 'two', 'three')


def main(checkpoint: str) -> None:
    print(f'mmclip {mmclip.__file__}, torch {torch.__version__}')
    torch.manual_seed(0)
    model = get_model('clip_vit-tiny-p8_zeroshot-cls_digits-32px')
    image = np.random.RandomState(0).randint(0, 256, (32, 32, 3), np.uint8)
    texts = [f'a photo of a {digit}' for digit in DIGITS]
    result = inference_model(model, image, texts=texts)
    assert result['pred_class'] in texts, result

    model = get_model('clip_vit-tiny-p8_1xb32-24e_digits-32px')
    samples = []
    for text in texts:
        sample = DataSample()
        sample.set_field(text, 'text')
        samples.append(sample)
    images = [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
              for _ in texts]
    weight = model.backbone.conv1.weight
    before = weight.detach().clone()
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    losses = model.train_step(dict(inputs=images, data_samples=samples),
                              wrapper)
    assert torch.isfinite(losses['loss']), losses
    assert not torch.equal(before, weight.detach()), 'no step was taken'

    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    assert unsafe_globals(checkpoint) == []
    loaded = load_weights(checkpoint)['state_dict']
    assert torch.equal(loaded['backbone.conv1.weight'], weight.detach())
    print('smoke ok')


if __name__ == '__main__':
    main(sys.argv[1])
