# Image classifiers from CLIP are mmpretrain's ImageClassifier with a
# CLIPVisionTransformer backbone and a CLIPClsHead; ZeroShotInit starts them
# as a CLIP checkpoint's zero-shot classifier.
from .zero_shot_init import ZeroShotInit

__all__ = ['ZeroShotInit']
