# Fine-tune OpenAI CLIP ViT-B/16 on ImageNet-1k with FT-CLIP's recipe
# (../_base_/schedules/clip_finetune_adamw_layer-decay.py: AdamW 6e-4, layer
# decay 0.6, 50 epochs, EMA 0.9998, label smoothing 0.1, RandAugment, random
# erasing; 8 GPUs x 256 images = 2048 a step, bf16).
#   python tools/model_converters/clip_to_mmclip.py ViT-B-16.pt \
#       checkpoints/vit-b-16_openai.pth
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_ft-8xb256-amp-50e_in1k.py \
#       --launcher pytorch
# Target: 85.7 top-1, FT-CLIP's best epoch (EMA weights, epoch ~30 of 50 in
# its logs/CLIP_B16.log; 84.7 at epoch 50). FT-CLIP mean-pools the patch
# tokens into a new, randomly initialised head and freezes the patch
# embedding. Here the head is CLIP's zero-shot classifier instead (WiSE-FT,
# FLYP): the class-token embedding, L2-normalised, times the class-name
# prompt embeddings, so step 0 scores zero-shot accuracy (68.3) and
# tools/model_converters/wise_ft.py can interpolate with zero-shot weights;
# the patch embedding trains at 0.6 ** 13 = 0.13 % of the lr.
_base_ = [
    '../_base_/models/clip_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs256_clip_ft.py',
    '../_base_/schedules/clip_finetune_adamw_layer-decay.py',
    '../_base_/finetune_runtime.py',
]
# An mmpretrain ImageClassifier: the CLIP image tower, a linear head on its
# normalised embedding; ZeroShotInit fills both from the CLIP checkpoint
# (its text tower is built only to make the head).
model = dict(
    _delete_=True,
    _scope_='mmclip',
    type='ImageClassifier',
    backbone=_base_.model.vision_backbone,
    head=dict(
        type='CLIPClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1)),
    data_preprocessor=_base_.model.data_preprocessor,
    init_cfg=dict(
        type='ZeroShotInit',
        checkpoint='checkpoints/vit-b-16_openai.pth',
        clip=_base_.model,
        classnames='imagenet',
        templates='openai_imagenet',
        scale=100.),
)
