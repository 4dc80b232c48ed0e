# Linear probe of OpenAI CLIP ViT-B/16 on ImageNet-1k: the image tower is
# frozen (projection included) and only the linear head on the normalised
# embedding trains, starting as the zero-shot classifier (step 0 scores
# zero-shot accuracy, 68.3); AdamW, 10 epochs, 8 GPUs x 256 images, bf16.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-16.pt \
#       checkpoints/vit-b-16_openai.pth
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_linear-probe-8xb256-amp-10e_in1k.py \
#       --launcher pytorch
# The training images get the evaluation preprocessing (no augmentation), so
# every epoch sees the same feature per image: they can be computed once,
# e.g. mmclip.evaluation.extract_labelled_features(model, loader,
# normalize=True, feature_fn=lambda x: model.extract_feat(x)[-1]) gives the
# head's inputs,
# and the head fitted on them (tools/analysis_tools/linear_probe.py fits the
# CLIP paper's logistic regression on extracted features).
# Target: above the zero-shot 68.3 it starts from; no figure is claimed. The
# reference to compare with is the CLIP paper's ImageNet linear probe of
# ViT-B/16 (its Table 10: L-BFGS logistic regression, another optimiser),
# whose number could not be checked offline; not measured for this recipe.
# Stage 1 of LP-FT: clip_vit-base-p16_lp-ft-8xb256-amp-50e_in1k.py continues
# from its last checkpoint.
_base_ = './clip_vit-base-p16_ft-8xb256-amp-50e_in1k.py'
model = dict(
    backbone=dict(frozen_stages=12),  # all 12 blocks, ln_post and proj
    head=dict(loss=dict(_delete_=True, type='CrossEntropyLoss')))
train_dataloader = dict(dataset=dict(pipeline=_base_.test_pipeline))
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.),
)
max_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=1,
         end=max_epochs, T_max=max_epochs - 1, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
# A convex problem on fixed features: no weight averaging needed.
custom_hooks = [dict(type='PlainCheckpointHook')]
