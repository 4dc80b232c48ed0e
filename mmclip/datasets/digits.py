"""Class names and zero-shot prompts of the handwritten-digits dataset.

The data itself (scikit-learn's digits as PNGs with captions) is written by
``tools/dataset_converters/prepare_digits.py``; these are what training and
evaluation read at run time, through the ``'digits'`` entries of
:mod:`mmclip.datasets.zero_shot_data` (e.g. the zero-shot head of
``configs/clip/clip_vit-tiny-p8_zeroshot-cls_digits-32px.py``).
"""

#: The digits' names, ``classnames.txt`` of the written data.
CLASSNAMES = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
              'eight', 'nine')

#: Zero-shot prompts for evaluation, ``{}`` takes a class name; never seen
#: in training captions (the tool's ``TRAIN_TEMPLATES``), so zero-shot
#: accuracy measures transfer, not memorised prompts.
ZERO_SHOT_TEMPLATES = (
    'a picture of the digit {}.',
    '{} drawn in black and white.',
    'a low resolution sketch of {}.',
)
