# CIFAR-100 test split for zero-shot CLIP, evaluated as the ImageNet base
# does (OpenAI's short side + center crop to 224, batch 32, top-1/top-5);
# for CIFAR's square 32x32 images this is a plain bicubic upscale.
# mmpretrain's CIFAR100 yields decoded RGB arrays (not mmcv's BGR): no
# loading step, and configs using this file must set the model's data
# preprocessor to ``to_rgb=False``.
_base_ = './imagenet_bs32_clip.py'
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'
test_pipeline = _base_.test_pipeline[1:]  # without LoadImageFromFile
# mmengine resolves a base's variables inside the base: name them again.
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))
