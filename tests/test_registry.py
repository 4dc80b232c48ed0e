import pytest
from mmpretrain import registry as mmpretrain_registry

import mmclip.registry as registry
from mmclip.registry import MODELS, TOKENIZER


@pytest.mark.parametrize('name', registry.__all__)
def test_every_registry_is_a_child_of_mmpretrains(name):
    child = getattr(registry, name)
    assert child.scope == 'mmclip'
    assert child.parent is getattr(mmpretrain_registry, name)


def test_names_do_not_collide_with_mmpretrain():
    import mmpretrain.models  # noqa: F401

    import mmclip.models  # noqa: F401 (register)
    ours = set(MODELS.module_dict) | set(TOKENIZER.module_dict)
    assert {'CLIPVisionTransformer', 'CLIPTextTransformer', 'CLIPModel',
            'CLIPBPETokenizer'} <= ours
    theirs = set(mmpretrain_registry.MODELS.module_dict) | set(
        mmpretrain_registry.TOKENIZER.module_dict)
    assert {'CLIP', 'CLIPZeroShot'} <= theirs  # still theirs
    assert not ours & theirs


def test_lookup_falls_back_to_mmpretrain():
    # ClsDataPreprocessor lives in mmpretrain; mmclip's registry finds it.
    dp = MODELS.build(dict(type='ClsDataPreprocessor'))
    assert type(dp).__name__ == 'ClsDataPreprocessor'


@pytest.mark.parametrize('name', registry.__all__)
def test_stated_locations_are_mmpretrains(name):
    """mmclip lists mmpretrain's import locations itself (mmengine offers no
    public getter); this fails if mmpretrain moves its modules. The test may
    read the private attribute, the library does not."""
    child = getattr(registry, name)
    theirs = child.parent._locations
    assert theirs and set(theirs) <= set(child._locations), (
        f'mmpretrain now fills {name} from {theirs}; update '
        'mmclip.registry._child')
