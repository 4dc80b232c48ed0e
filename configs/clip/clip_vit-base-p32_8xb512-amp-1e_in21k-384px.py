# 384px continuation of the ImageNet-21k CLIP ViT-B/32: the ViT-B/16
# continuation (one more epoch at 384px from the 224px run's last
# checkpoint, position embedding resized on load; lr 1e-4, untuned) with
# 32px patches; 8 GPUs x 512, bf16.
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p32_8xb512-amp-32e_in21k.py \
#       --launcher pytorch
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p32_8xb512-amp-1e_in21k-384px.py \
#       --launcher pytorch
# Target: none published; it should score above the 224px run it starts
# from on zero-shot ImageNet-1k val.
_base_ = './clip_vit-base-p16_8xb512-amp-1e_in21k-384px.py'
model = dict(vision_backbone=dict(patch_size=32, with_cp=False))
load_from = 'work_dirs/clip_vit-base-p32_8xb512-amp-32e_in21k/epoch_32.pth'
