# Zero-shot CIFAR-100 classification with OpenAI CLIP ViT-B/16: CIFAR-100
# class names x OpenAI's 18 CIFAR templates; images resized to 224px.
# Data: mmpretrain's CIFAR100 files under data/cifar100.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-16.pt \
#       checkpoints/vit-b-16_openai.pth
#   python tools/test.py \
#       configs/clip/clip_vit-base-p16_zeroshot-cls_cifar100.py \
#       checkpoints/vit-b-16_openai.pth
_base_ = [
    '../_base_/models/clip_vit-base-p16.py',
    '../_base_/datasets/cifar100_bs32_clip.py',
    '../_base_/default_runtime.py',
]
model = dict(
    # CIFAR100 yields RGB arrays already: the model base's OpenAI mean/std
    # without its BGR->RGB flip.
    data_preprocessor=dict(to_rgb=False),
    predict_head=dict(
        type='ZeroShotClsHead', classnames='cifar100', templates='cifar'))
