# Zero-shot ImageNet-1k classification with OpenAI CLIP ViT-L/14.
# Run: python tools/test.py THIS_CONFIG CHECKPOINT (CHECKPOINT converted with
# tools/model_converters/clip_to_mmclip.py). The zero-shot head (class names x
# OpenAI's 80 templates) is added by the zero-shot evaluation work.
_base_ = [
    '../_base_/models/clip_vit-large-p14.py',
    '../_base_/datasets/imagenet_bs32_clip-224px.py',
    '../_base_/default_runtime.py',
]
