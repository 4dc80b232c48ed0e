# CLIP ViT-B/32 pretrained from scratch on CC3M: 8 GPUs x 512, bf16 autocast,
# 32 epochs, AdamW + cosine, symmetric InfoNCE over the global batch (features
# gathered with gradient, local logits). Exact GELU, as open_clip's ViT-B-32.
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p32_8xb512-amp-32e_cc3m.py \
#       --launcher pytorch
# Memory: add `model.vision_backbone.with_cp=True` (and the text encoder's)
# for gradient checkpointing; `patch_dropout=0.5` halves image-tower compute.
_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/datasets/cc3m_wds_clip.py',
    '../_base_/schedules/clip_pretrain_adamw_cosine.py',
    '../_base_/pretrain_runtime.py',
]
model = dict(
    vision_backbone=dict(act_cfg=dict(type='GELU')),
    text_encoder=dict(act_cfg=dict(type='GELU')),
    head=dict(type='CLIPContrastiveHead'),
)
