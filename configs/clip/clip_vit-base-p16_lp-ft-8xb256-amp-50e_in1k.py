# LP-FT (Kumar et al., arXiv 2202.10054) for OpenAI CLIP ViT-B/16 on
# ImageNet-1k, two stages: first the linear probe (frozen tower, the head
# trained from the zero-shot classifier), then the full FT-CLIP fine-tune
# (this config) starting from the probe's weights instead of the zero-shot
# head, so early updates of the tower follow a head that already fits the
# labels. 8 GPUs x 256 images, bf16.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-16.pt \
#       checkpoints/vit-b-16_openai.pth
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_linear-probe-8xb256-amp-10e_in1k.py \
#       --launcher pytorch
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_lp-ft-8xb256-amp-50e_in1k.py \
#       --launcher pytorch
# Target: the fine-tune config's 85.7 (FT-CLIP); LP-FT's reported gains are
# under distribution shift, and not measured for this recipe.
_base_ = './clip_vit-base-p16_ft-8xb256-amp-50e_in1k.py'
model = dict(init_cfg=None)  # every weight comes from the linear probe
load_from = ('work_dirs/clip_vit-base-p16_linear-probe-8xb256-amp-10e_in1k/'
             'epoch_10.pth')
