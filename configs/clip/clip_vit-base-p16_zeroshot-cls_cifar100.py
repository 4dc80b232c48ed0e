# Zero-shot CIFAR-100 classification with OpenAI CLIP ViT-B/16: CIFAR-100
# class names x OpenAI's 18 CIFAR templates; images resized to 224px.
# Run: python tools/test.py THIS_CONFIG CHECKPOINT.
_base_ = [
    '../_base_/models/clip_vit-base-p16.py',
    '../_base_/datasets/cifar100_bs32_clip-224px.py',
    '../_base_/default_runtime.py',
]
model = dict(
    # CIFAR100 yields RGB arrays already: no BGR->RGB flip.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
        std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255],
        to_rgb=False),
    predict_head=dict(
        type='ZeroShotClsHead', classnames='cifar100', templates='cifar'))
