# Caption fine-tuning of OpenAI's CLIP ViT-B/32 on your own image-caption
# pairs (data/captions/train.csv, open_clip's filepath,title; layouts and the
# webdataset variant in ../_base_/datasets/custom_captions_bs64_clip.py):
# the contrastive loss of pretraining, both towers trained, from the
# converted weights (load_from). Schedule (why, in its header): AdamW lr 1e-5,
# weight decay 0.1, 1 warm-up epoch then cosine, 10 epochs, 8 GPUs x 64 =
# 512 pairs a step, bf16. Validation: zero-shot top-1 on your labelled
# held-out set (val.csv, classnames.txt) after every epoch.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-32.pt \
#       checkpoints/vit-b-32_openai.pth
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p32_caption-ft-8xb64-amp-10e_custom.py \
#       --launcher pytorch
# Guide (locking, accumulation, WiSE-FT): docs/own_data.md.
_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/datasets/custom_captions_bs64_clip.py',
    '../_base_/schedules/clip_caption_finetune_adamw_cosine.py',
    '../_base_/pretrain_runtime.py',
]
load_from = 'checkpoints/vit-b-32_openai.pth'
model = dict(
    head=dict(type='CLIPContrastiveHead'),
    predict_head=_base_.zero_shot_head,
    # Locking, open_clip's `lock()`: frozen_stages=12 freezes a whole tower
    # (its 12 blocks, embeddings, final norm and projection): LiT locks the
    # image tower so. frozen_stages=12 - N leaves its top N blocks, final
    # norm and projection trainable. -1: everything trains.
    vision_backbone=dict(frozen_stages=-1),
    text_encoder=dict(frozen_stages=-1),
)
