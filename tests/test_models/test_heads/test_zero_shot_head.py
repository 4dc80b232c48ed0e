"""ZeroShotClsHead: classifier parity with open_clip, caching, predictions."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from mmclip.datasets.zero_shot_data import (OPENAI_CIFAR_TEMPLATES,
                                            OPENAI_IMAGENET_TEMPLATES,
                                            OPENAI_IMAGENET_TEMPLATES_7,
                                            resolve_classnames,
                                            resolve_templates)
from mmclip.models.heads import ZeroShotClsHead
from mmclip.models.utils import build_zero_shot_classifier
from mmclip.registry import MODELS


@pytest.fixture
def model(tiny_clip_cfg):
    import mmclip.models  # noqa: F401
    return MODELS.build(tiny_clip_cfg).eval()


def _forbid_text_forward(monkeypatch, model):

    def boom(*args, **kwargs):
        raise AssertionError('text tower ran although the cache should hit')

    monkeypatch.setattr(model, 'encode_text', boom)


def test_template_and_classname_sets(tmp_path):
    assert len(OPENAI_IMAGENET_TEMPLATES) == 80
    assert len(set(OPENAI_IMAGENET_TEMPLATES)) == 80
    assert set(OPENAI_IMAGENET_TEMPLATES_7) <= set(OPENAI_IMAGENET_TEMPLATES)
    assert len(OPENAI_CIFAR_TEMPLATES) == 18
    assert len(resolve_classnames('imagenet')) == 1000
    assert len(resolve_classnames('cifar10')) == 10
    assert len(resolve_classnames('cifar100')) == 100
    assert resolve_classnames('digits')[7] == 'seven'
    assert len(resolve_templates('digits')) == 3
    path = tmp_path / 'names.txt'
    path.write_text('cat\n\ndog\n')
    assert resolve_classnames(str(path)) == ('cat', 'dog')
    with pytest.raises(ValueError, match='openai_imagenet'):
        resolve_templates('openai')
    with pytest.raises(ValueError, match='must contain'):
        resolve_templates(['no placeholder'])
    with pytest.raises(FileNotFoundError, match='one per line'):
        resolve_classnames(str(tmp_path / 'missing.txt'))
    with pytest.raises(ValueError, match='learned'):
        ZeroShotClsHead('digits', 'digits', scale='auto')


def test_parity_with_open_clip(tmp_path):
    """Same weights -> the same (D, C) classifier as open_clip's."""
    import open_clip

    from mmclip.converters import ActivationWarning, convert_checkpoint
    torch.manual_seed(0)
    oc = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=dict(layers=1, width=64, patch_size=8, image_size=32),
        text_cfg=dict(context_length=77, vocab_size=49408, width=64,
                      heads=1, layers=2),
        quick_gelu=True).eval()
    torch.save(oc.state_dict(), tmp_path / 'oc.pt')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', ActivationWarning)
        sd, meta = convert_checkpoint(
            str(tmp_path / 'oc.pt'), act='quick_gelu')
    import mmclip.models  # noqa: F401
    from mmclip.models.multimodal.clip_model import CLIPModel
    ours = CLIPModel(**meta['model_cfg'],
                     tokenizer=dict(type='CLIPBPETokenizer')).eval()
    ours.load_state_dict(sd, strict=True)

    classnames = list(resolve_classnames('imagenet')[:20])
    templates = list(OPENAI_IMAGENET_TEMPLATES)
    expected = open_clip.build_zero_shot_classifier(
        oc, tokenizer=open_clip.get_tokenizer('ViT-B-32'),
        classnames=classnames, templates=templates, num_classes_per_batch=7)
    head = ZeroShotClsHead(classnames, templates, cache_dir=None,
                           batch_size=300)
    got = head.get_classifier(ours.text_embedder())
    assert got.shape == expected.shape == (32, 20)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_disk_cache_hit_and_miss(tmp_path, model, monkeypatch):
    names, templates = ['cat', 'dog', 'car'], ['a photo of a {}.', '{}!']
    head = ZeroShotClsHead(names, templates, cache_dir=str(tmp_path))
    first = head.get_classifier(model.text_embedder())
    files = list(tmp_path.glob('*.pt'))
    assert len(files) == 1 and files[0] == tmp_path / (
        head.cache_key(model.text_fingerprint()) + '.pt')
    # A plain tensor, readable without unpickling code.
    stored = torch.load(files[0], weights_only=True)
    assert isinstance(stored, torch.Tensor)
    torch.testing.assert_close(stored, first)
    torch.testing.assert_close(
        first,
        build_zero_shot_classifier(model.text_embedder(), names, templates))

    # A fresh head (empty memory) with the same inputs: no text forward.
    _forbid_text_forward(monkeypatch, model)
    again = ZeroShotClsHead(names, templates, cache_dir=str(tmp_path))
    torch.testing.assert_close(
        again.get_classifier(model.text_embedder()), first)
    monkeypatch.undo()

    # Changed templates (or class names) miss the cache.
    other = ZeroShotClsHead(names, templates[:1], cache_dir=str(tmp_path))
    calls = []
    orig = model.encode_text
    monkeypatch.setattr(model, 'encode_text',
                        lambda *a, **k: calls.append(1) or orig(*a, **k))
    other.get_classifier(model.text_embedder())
    assert calls and len(list(tmp_path.glob('*.pt'))) == 2
    key = model.text_fingerprint()
    assert other.cache_key(key) != head.cache_key(key)


def test_cache_key_follows_text_weights(tmp_path, model):
    head = ZeroShotClsHead(['a', 'b'], ['{}'], cache_dir=str(tmp_path))
    key = head.cache_key(model.text_fingerprint())
    first = head.get_classifier(model.text_embedder())
    # Changing the image tower does not touch the classifier ...
    with torch.no_grad():
        next(model.backbone.parameters()).add_(1.)
    assert head.cache_key(model.text_fingerprint()) == key
    # ... changing the text tower (here through load_state_dict, as a new
    # checkpoint would) invalidates both the disk key and the memory copy.
    state = model.state_dict()
    state['text_encoder.text_projection'] = torch.randn_like(
        state['text_encoder.text_projection'])
    model.load_state_dict(state)
    assert head.cache_key(model.text_fingerprint()) != key
    second = head.get_classifier(model.text_embedder())
    assert not torch.allclose(first, second)
    torch.testing.assert_close(
        second,
        build_zero_shot_classifier(model.text_embedder(), ['a', 'b'], ['{}']))
    # So does an in-place update (as an optimizer step makes).
    with torch.no_grad():
        model.text_encoder.text_projection.mul_(-1)
    torch.testing.assert_close(
        head.get_classifier(model.text_embedder()), -second)


def test_in_memory_reuse(model, monkeypatch):
    head = ZeroShotClsHead(['a', 'b'], ['{}'], cache_dir=None)
    first = head.get_classifier(model.text_embedder())
    _forbid_text_forward(monkeypatch, model)
    assert head.get_classifier(model.text_embedder()) is first
    head.reset()
    with pytest.raises(AssertionError, match='cache should hit'):
        head.get_classifier(model.text_embedder())
    monkeypatch.undo()
    # A plain function has no fingerprint: always built, never cached.
    calls = []

    def encode(texts):
        calls.append(len(texts))
        return model.encode_text(model.tokenizer(texts))

    torch.testing.assert_close(head.get_classifier(encode), first)
    head.get_classifier(encode)
    assert calls == [2, 2]


def test_builds_with_the_text_tower_in_eval_mode(model):
    """Dropout must not leak into the cached classifier."""
    model.text_encoder.transformer.resblocks[0].attn.attn_drop = 0.9
    head = ZeroShotClsHead(['a', 'b', 'c'], ['{}', 'x {}'], cache_dir=None)
    expected = head.get_classifier(model.eval().text_embedder())
    head.reset()
    got = head.get_classifier(model.train().text_embedder())
    torch.testing.assert_close(got, expected)
    assert model.text_encoder.training  # restored


def test_unreadable_cache_is_rebuilt(tmp_path, model):
    head = ZeroShotClsHead(['a', 'b'], ['{}'], cache_dir=str(tmp_path))
    path = head.cache_path(model.text_fingerprint())
    tmp_path.joinpath(path.split('/')[-1]).write_bytes(b'not a tensor')
    weights = head.get_classifier(model.text_embedder())
    assert weights.shape[1] == 2
    assert torch.load(path, weights_only=True).shape == weights.shape


@pytest.mark.parametrize('scale', [100., 'learned'])
def test_predict_and_mmpretrain_accuracy(model, scale):
    from mmpretrain.evaluation import Accuracy
    from mmpretrain.structures import DataSample
    names = [f'class {i}' for i in range(7)]
    model.predict_head = ZeroShotClsHead(
        names, ['a photo of {}.'], scale=scale, cache_dir=None)
    torch.manual_seed(1)
    images = torch.randn(6, 3, 32, 32)
    gts = [3, 1, 4, 1, 5, 0]
    samples = [DataSample().set_gt_label(g) for g in gts]
    with torch.no_grad():
        out = model(images, samples, mode='predict')
    assert out[0] is samples[0] and int(out[2].gt_label) == 4

    img = model.encode_image(images, normalize=True)
    weights = build_zero_shot_classifier(model.text_embedder(), names,
                                         ['a photo of {}.'])
    factor = 100. if scale == 100. else model.logit_scale.exp()
    probs = F.softmax(factor * img @ weights, dim=-1)
    got = torch.stack([s.pred_score for s in out])
    torch.testing.assert_close(got, probs.detach(), atol=1e-5, rtol=1e-5)
    assert [int(s.pred_label) for s in out] == probs.argmax(-1).tolist()

    metric = Accuracy(topk=(1, 5))
    metric.process(None, [s.to_dict() for s in out])
    result = metric.evaluate(len(out))
    ranked = probs.argsort(-1, descending=True)
    target = torch.tensor(gts)[:, None]
    for k in (1, 5):
        direct = 100. * (ranked[:, :k] == target).any(-1).float().mean()
        assert result[f'accuracy/top{k}'] == pytest.approx(
            float(direct), abs=1e-4)

    # The head needs no model: image features, a text encoder and the
    # logit scale. Without data samples it makes new ones.
    with torch.no_grad():
        fresh = model.predict_head.predict(
            model.encode_image(images), model.text_embedder(),
            logit_scale=model.logit_scale)
    assert len(fresh) == 6 and 'gt_label' not in fresh[0]
    torch.testing.assert_close(
        torch.stack([s.pred_score for s in fresh]), got)
    if scale == 'learned':
        with pytest.raises(ValueError, match="needs the model's logit_scale"):
            model.predict_head.predict(img, model.text_embedder())


def test_resolve_scale_is_the_one_multiplier():
    """A number is the multiplier; 'learned' is exp of the model's log
    temperature (any one-element shape); anything else is refused."""
    from mmclip.models.utils import resolve_scale
    assert resolve_scale(100) == torch.tensor(100.)
    learned = resolve_scale('learned', torch.full((1, ), 2.5,
                                                  requires_grad=True))
    assert learned.shape == () and not learned.requires_grad
    assert learned.item() == pytest.approx(math.exp(2.5))
    with pytest.raises(ValueError, match="needs the model's logit_scale"):
        resolve_scale('learned')
    with pytest.raises(ValueError, match="a number or 'learned'"):
        resolve_scale('auto')


def test_old_logit_scale_key_builds_with_a_warning(model):
    """A config written before the rename (``logit_scale=`` for the
    multiplier) builds, warns naming ``scale``, and predicts the same."""
    names, images = ['cat', 'dog', 'car'], torch.randn(4, 3, 32, 32)
    for value in ('learned', 30.):
        cfg = dict(type='ZeroShotClsHead', classnames=names,
                   templates=['a {}.'], cache_dir=None)
        with pytest.warns(FutureWarning,
                          match=rf"pass scale={value!r} instead"):
            old = MODELS.build(dict(cfg, logit_scale=value))
        new = MODELS.build(dict(cfg, scale=value))
        assert old.scale == new.scale == value
        with torch.no_grad():
            feats = model.encode_image(images)
            scores = [
                torch.stack([s.pred_score for s in head.predict(
                    feats, model.text_embedder(),
                    logit_scale=model.logit_scale)]) for head in (old, new)
            ]
        torch.testing.assert_close(scores[0], scores[1], rtol=0, atol=0)


def test_a_users_class_name_file_is_read_when_first_needed(tmp_path):
    """A caption fine-tune config names the user's classnames.txt: its
    model builds before the file exists (get_model, parameter counts), a
    prediction without it raises the missing-file error, and the file is
    read once it is there. A typo in a registered name still fails at
    build."""
    from mmclip.errors import ConfigError, MissingFileError
    names = tmp_path / 'classnames.txt'
    head = ZeroShotClsHead(str(names), templates='shapes', cache_dir=None)
    assert head.templates == resolve_templates('shapes')
    with pytest.raises(MissingFileError, match='classnames.txt'):
        head.num_classes
    names.write_text('cat\ndog\n')
    assert head.classnames == ('cat', 'dog') and head.num_classes == 2
    with pytest.raises(ConfigError, match='Unknown classnames'):
        ZeroShotClsHead('imagenet1k', cache_dir=None)
