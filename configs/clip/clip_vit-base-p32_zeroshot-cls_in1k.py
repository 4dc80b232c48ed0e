# Zero-shot ImageNet-1k classification with OpenAI CLIP ViT-B/32: class names
# (OpenAI's curated ImageNet names) x OpenAI's 80 prompt templates.
# Run: python tools/test.py THIS_CONFIG CHECKPOINT (CHECKPOINT converted with
# tools/model_converters/clip_to_mmclip.py). The classifier is built on the
# first batch and cached in ~/.cache/mmclip/zero_shot.
_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/datasets/imagenet_bs32_clip-224px.py',
    '../_base_/default_runtime.py',
]
model = dict(
    predict_head=dict(
        type='ZeroShotClsHead', classnames='imagenet',
        templates='openai_imagenet'))
