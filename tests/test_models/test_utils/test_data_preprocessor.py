"""CLIP models copy their batches to the device without blocking."""
import torch
from mmengine.registry import DefaultScope
from mmengine.structures import BaseDataElement

from mmclip.models.utils import CLIPDataPreprocessor
from mmclip.registry import MODELS


class RecordsCopies(BaseDataElement):
    """A data sample that records how it is moved."""

    def to(self, *args, **kwargs):
        self.set_field(kwargs, 'copied_with', field_type='metainfo')
        return self


def test_default_preprocessor_copies_without_blocking(tiny_clip_cfg):
    with DefaultScope.overwrite_default_scope('mmclip'):
        model = MODELS.build(tiny_clip_cfg)
        blocking = MODELS.build(
            dict(type='CLIPDataPreprocessor', non_blocking=False))
    assert isinstance(model.data_preprocessor, CLIPDataPreprocessor)
    for preprocessor, expected in ((model.data_preprocessor, True),
                                   (blocking, False)):
        samples = [RecordsCopies(), RecordsCopies()]
        cast = preprocessor.cast_data(
            dict(inputs=[torch.zeros(3, 4, 4)],
                 data_samples=samples, nested=(dict(x=RecordsCopies()), )))
        copied = samples + [cast['nested'][0]['x']]
        assert [s.copied_with for s in copied] == [
            dict(non_blocking=expected)] * 3
        assert torch.equal(cast['inputs'][0], torch.zeros(3, 4, 4))
