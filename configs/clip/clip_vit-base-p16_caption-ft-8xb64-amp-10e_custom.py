# Caption fine-tuning of OpenAI's CLIP ViT-B/16 on your own image-caption
# pairs: the B/32 recipe (clip_vit-base-p32_caption-ft-8xb64-amp-10e_custom)
# with 16px patches, 196 patch tokens an image.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-16.pt \
#       checkpoints/vit-b-16_openai.pth
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_caption-ft-8xb64-amp-10e_custom.py \
#       --launcher pytorch
# Fewer GPUs, the same 512 pairs a step: exact contrastive accumulation,
# K micro-batches of 64 per process, e.g. on 2 GPUs
#   --cfg-options model.accum_steps=4 train_dataloader.batch_size=256
# (processes x K x 64 = 512; the memory of one micro-batch of 64).
# Guide: docs/own_data.md.
_base_ = './clip_vit-base-p32_caption-ft-8xb64-amp-10e_custom.py'
load_from = 'checkpoints/vit-b-16_openai.pth'
model = dict(vision_backbone=dict(patch_size=16))
