"""Decode the batch's JPEGs on the model's device, then preprocess."""
from typing import List

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger

from mmclip.registry import MODELS
from .data_preprocessor import CLIPDataPreprocessor


def resize_crop(image: torch.Tensor, box, size) -> torch.Tensor:
    """Crop ``box`` (top, left, height, width) out of a ``(3, H, W)`` uint8
    image and resize it to ``size`` (H, W): bicubic with antialiasing, the
    filter Pillow's ``resize(BICUBIC)`` uses, rounded back to uint8."""
    top, left, height, width = box
    crop = image[:, top:top + height, left:left + width]
    out = F.interpolate(crop[None].float(), size=tuple(size), mode='bicubic',
                        antialias=True, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


@MODELS.register_module()
class DeviceDecodeDataPreprocessor(CLIPDataPreprocessor):
    """:class:`CLIPDataPreprocessor` for batches from
    :class:`~mmclip.datasets.transforms.RandomResizedCropOnDevice`: the
    encoded JPEGs (1-D uint8 tensors) are decoded together on the model's
    device (nvJPEG on a GPU, through ``torchvision.io.decode_jpeg``),
    cropped to their sample's ``crop_box`` and resized to its
    ``img_shape`` (:func:`resize_crop`), and flipped to BGR like the images
    the workers decoded; then the whole batch is stacked and normalised as
    ``ClsDataPreprocessor`` does. Batches without encoded images (testing)
    pass straight through, so the model's evaluation is unchanged.

    A JPEG the device cannot decode after all (corrupt data past the
    header) is decoded by Pillow on the CPU instead, with a warning naming
    the file.

    Args:
        **kwargs: :class:`CLIPDataPreprocessor`'s arguments (mean, std,
            ``to_rgb=True`` for mmclip's BGR layout, ``non_blocking``, ...).
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if isinstance(inputs, torch.Tensor) or not any(
                x.ndim == 1 for x in inputs):
            return super().forward(data, training)
        samples = data['data_samples']
        encoded = [i for i, x in enumerate(inputs) if x.ndim == 1]
        images = self._decode([inputs[i] for i in encoded],
                              [samples[i] for i in encoded])
        inputs = [x.to(self.device) for x in inputs]
        for i, image in zip(encoded, images):
            inputs[i] = resize_crop(image, samples[i].crop_box,
                                    samples[i].img_shape).flip(0)
        return super().forward(dict(data, inputs=torch.stack(inputs)),
                               training)

    def _decode(self, encoded: List[torch.Tensor],
                samples: list) -> List[torch.Tensor]:
        """``(3, H, W)`` RGB uint8 images on the device."""
        from torchvision.io import ImageReadMode, decode_jpeg
        try:
            return decode_jpeg(encoded, mode=ImageReadMode.RGB,
                               device=self.device)
        except RuntimeError:  # one bad file fails the batched call
            pass
        images = []
        for data, sample in zip(encoded, samples):
            try:
                images.append(decode_jpeg(data, mode=ImageReadMode.RGB,
                                          device=self.device))
            except RuntimeError as e:
                MMLogger.get_current_instance().warning(
                    f'{sample.get("img_path", "a JPEG")}: not decodable on '
                    f'{self.device} ({e}); decoded by Pillow instead.')
                images.append(self._decode_with_pillow(data))
        return images

    def _decode_with_pillow(self, data: torch.Tensor) -> torch.Tensor:
        from mmclip.datasets.transforms import decode_image
        rgb = decode_image(data.numpy().tobytes(), exif_transpose=False)
        return torch.from_numpy(rgb).permute(2, 0, 1).to(self.device)
