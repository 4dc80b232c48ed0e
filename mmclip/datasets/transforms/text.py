"""Caption transforms: pick one caption, tokenize once in the pipeline."""
import math
from typing import Optional, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.registry import DefaultScope

from mmclip.registry import TOKENIZER, TRANSFORMS
from ..bad_samples import mark_bad


def clean_caption(value) -> Optional[str]:
    """Return a caption as a stripped str, or None if it is missing/empty.

    Numbers (a JSONL caption ``2023``) become strings; ``None`` and NaN (an
    empty cell read by pandas) count as missing.

    Args:
        value: Raw caption value.

    Returns:
        str | None: The stripped caption, None when there is no text.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bytes):
        value = value.decode('utf-8', errors='replace')
    text = str(value).strip()
    return text or None


@TRANSFORMS.register_module()
class SampleCaption(BaseTransform):
    """Pick one caption at random in training.

    Entries of ``CocoCaptionDataset`` and ``ClassificationTextDataset`` carry
    all their captions (COCO's ~5 per image, one per prompt template); a
    training step uses one, drawn anew every time the sample is loaded. Empty
    captions are never drawn; a sample without any non-empty caption is bad
    (returns None). A single str passes through (stripped), so the same
    pipeline serves ``ImageTextDataset``. Uses ``np.random``, which mmengine
    seeds per worker.

    **Required Keys:** ``key``. **Modified Keys:** ``key`` (now a str).

    Args:
        key (str): Key of the caption(s). Defaults to ``'text'``.
    """

    def __init__(self, key: str = 'text'):
        self.key = key

    def transform(self, results: dict) -> Optional[dict]:
        value = results.get(self.key)
        if isinstance(value, (list, tuple)):
            candidates = [c for c in map(clean_caption, value) if c]
            if not candidates:
                return mark_bad(
                    results, f'none of its {len(value)} captions has text')
            text = candidates[np.random.randint(len(candidates))]
        else:
            text = clean_caption(value)
            if text is None:
                return mark_bad(results, f'empty caption {value!r}')
        results[self.key] = text
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(key='{self.key}')"


@TRANSFORMS.register_module()
class TokenizeText(BaseTransform):
    """Tokenize the caption(s) into CLIP token ids, once, in the pipeline.

    A str caption gives ``text_ids`` of shape ``(context_length, )``; a list
    of K captions (evaluation of ``CocoCaptionDataset``) gives
    ``(K, context_length)``. Over-long captions are cut to ``context_length``
    tokens ending with ``<end_of_text>`` when ``truncate=True`` (web captions
    can be paragraphs; raising would stop training). An empty or whitespace
    caption, or a list with no non-empty caption, makes the sample bad (None).

    **Required Keys:** ``key``. **Added Keys:** ``out_key`` (LongTensor).
    **Modified Keys:** ``key`` (stripped str / list of str).

    Args:
        tokenizer (dict | callable): Tokenizer config or object called as
            ``tokenizer(list_of_str, context_length=..., truncate=...)`` and
            returning a LongTensor ``(N, context_length)``.
            Defaults to ``dict(type='CLIPBPETokenizer')``.
        context_length (int): Tokens per caption, SOT/EOT included.
            Defaults to 77.
        truncate (bool): Cut over-long captions instead of raising.
            Defaults to True.
        key (str): Input caption key. Defaults to ``'text'``.
        out_key (str): Output ids key. Defaults to ``'text_ids'``.
    """

    def __init__(self,
                 tokenizer: Union[dict,
                                  object] = dict(type='CLIPBPETokenizer'),
                 context_length: int = 77,
                 truncate: bool = True,
                 key: str = 'text',
                 out_key: str = 'text_ids'):
        if isinstance(tokenizer, dict):
            with DefaultScope.overwrite_default_scope('mmclip'):
                tokenizer = TOKENIZER.build(tokenizer)
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.truncate = truncate
        self.key = key
        self.out_key = out_key

    def transform(self, results: dict) -> Optional[dict]:
        value = results.get(self.key)
        if isinstance(value, (list, tuple)):
            texts = [clean_caption(c) or '' for c in value]
            if not any(texts):
                return mark_bad(
                    results, f'none of its {len(texts)} captions has text')
            ids = self._tokenize(texts)
            results[self.key] = texts
        else:
            text = clean_caption(value)
            if text is None:
                return mark_bad(results, f'empty caption {value!r}')
            ids = self._tokenize([text])[0]
            results[self.key] = text
        results[self.out_key] = ids
        return results

    def _tokenize(self, texts):
        return self.tokenizer(
            texts, context_length=self.context_length, truncate=self.truncate)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(tokenizer={self.tokenizer!r}, '
                f'context_length={self.context_length}, '
                f'truncate={self.truncate}, key={self.key!r}, '
                f'out_key={self.out_key!r})')
