"""CLIP text tokenizer: byte-level BPE with open_clip-identical ids.

:class:`CLIPBPETokenizer` reproduces ``open_clip.tokenizer.SimpleTokenizer``
(default ``clean='lower'``) id for id, but is much faster on ordinary
captions. The vocabulary is OpenAI's MIT-licensed CLIP merge list, bundled as
``bpe_simple_vocab_16e6.txt.gz`` (see :mod:`.bpe`).

Reference pipeline, applied to every text (the *slow path*):

1. ``ftfy.fix_text``, then ``html.unescape`` twice;
2. collapse whitespace (``' '.join(text.split())``) and lower-case;
3. split into pre-tokens with the CLIP pattern (special tokens, English
   contractions, letter runs, single digits, runs of other symbols);
4. BPE every pre-token.

*Fast path*: a text made only of printable ASCII except ``&``, plus
``\\t \\n \\f \\r``, is left unchanged by steps 1 (ftfy only touches non-ASCII
characters, ``&`` entities, ``\\x1b`` terminal escapes, and the control
characters it deletes: ``\\x00-\\x08 \\x0b \\x0e-\\x1f \\x7f``; ``\\r`` becomes
``\\n``, which is whitespace either way). For such text step 3 never yields a
pre-token that spans a space, so the ids of the text are the concatenation of
the ids of its whitespace-separated words; those are cached per word, which
skips ftfy, html and the regex entirely for known words. The tests check the
two paths against each other and against open_clip.
"""
import html
import re
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

import ftfy
import numpy as np
import regex

from mmclip.dependencies import has_torch
from .bpe import DEFAULT_BPE_PATH, BytePairEncoder, load_merges

if TYPE_CHECKING:
    import torch

SOT_TOKEN = '<start_of_text>'
EOT_TOKEN = '<end_of_text>'

# CLIP pre-tokenizer. Alternatives are tried in this order at each position,
# so special tokens and contractions win over the generic symbol run.
_PRE_TOKENS = (f"{SOT_TOKEN}|{EOT_TOKEN}|'s|'t|'re|'ve|'m|'ll|'d|"
               r'[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+')
_PRE_TOKEN_RE = regex.compile(_PRE_TOKENS, regex.IGNORECASE)

# The same pattern restricted to lower-case ASCII without whitespace (what
# the fast path feeds it). The stdlib engine has the same leftmost,
# first-alternative semantics and is faster to call.
_ASCII_PRE_TOKEN_RE = re.compile(f"{SOT_TOKEN}|{EOT_TOKEN}|'s|'t|'re|'ve|'m|"
                                 r"'ll|'d|[a-z]+|[0-9]|[^a-z0-9]+")

# Any character outside the fast-path alphabet: every char ftfy or
# html.unescape could alter (non-ASCII, '&', deleted controls, ESC).
_NEEDS_SLOW_PATH = re.compile(r'[^\t\n\x0c\r\x20-\x25\x27-\x7e]')


def is_fast_path_text(text: str) -> bool:
    """Whether ``text`` can skip ftfy / html unescaping (see module doc).

    Args:
        text (str): Raw input text.

    Returns:
        bool: True if ``text`` uses only the fast-path alphabet.
    """
    return text.isascii() and _NEEDS_SLOW_PATH.search(text) is None


def clean_text(text: str) -> str:
    """open_clip's ``clean='lower'`` normalization (the slow path's step 1-2).

    Args:
        text (str): Raw input text.

    Returns:
        str: Fixed, unescaped, whitespace-collapsed, lower-cased text.
    """
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    # str.split() with no argument also strips both ends.
    return ' '.join(text.split()).lower()


class CLIPBPETokenizer:
    """OpenAI CLIP byte-level BPE tokenizer, id-compatible with open_clip.

    Calling the tokenizer turns text into a ``[N, context_length]`` LongTensor
    (an int64 numpy array with ``return_tensors='np'``, which needs no
    PyTorch): ``<start_of_text>`` (49406), the text's tokens,
    ``<end_of_text>`` (49407), then zeros. The special tokens written
    literally in the text (``<start_of_text>``, ``<end_of_text>``) also map
    to their ids, as in open_clip; OpenAI's old spellings
    ``<|startoftext|>`` / ``<|endoftext|>`` are ordinary text.

    Args:
        bpe_path (str, optional): Merge list: OpenAI's
            ``bpe_simple_vocab_16e6.txt.gz`` or a HuggingFace ``merges.txt``
            (first line ``#version: ...``). None uses the bundled file.
            Defaults to None.
        context_length (int): Default output length per text, SOT and EOT
            included. Defaults to 77.
        truncate (bool): Default for over-long texts: True cuts them to
            ``context_length`` tokens ending in EOT (open_clip's behaviour),
            False raises a ``ValueError``. Defaults to False.
        cache_size (int): Most distinct words (and pre-tokens) whose ids are
            cached; a cache is emptied when it grows past this.
            Defaults to 100000.

    Examples:
        >>> tokenizer = CLIPBPETokenizer()
        >>> tokenizer(['a photo of a cat', 'a dog']).shape
        torch.Size([2, 77])
        >>> tokenizer.encode('a photo of a cat')
        [320, 1125, 539, 320, 2368]
    """

    def __init__(self,
                 bpe_path: Optional[str] = None,
                 context_length: int = 77,
                 truncate: bool = False,
                 cache_size: int = 100000):
        merges = load_merges(bpe_path or DEFAULT_BPE_PATH)
        self._bpe = BytePairEncoder(
            merges, [SOT_TOKEN, EOT_TOKEN], cache_size=cache_size)
        self.context_length = self._check_length(context_length)
        self.truncate = truncate
        self.cache_size = cache_size
        self._word_cache: Dict[str, Tuple[int, ...]] = {}

    @property
    def vocab_size(self) -> int:
        """int: Number of ids, special tokens included (49408)."""
        return len(self._bpe)

    @property
    def sot_token_id(self) -> int:
        """int: Id of ``<start_of_text>`` (49406)."""
        return self._bpe.special_ids[SOT_TOKEN]

    @property
    def eot_token_id(self) -> int:
        """int: Id of ``<end_of_text>`` (49407)."""
        return self._bpe.special_ids[EOT_TOKEN]

    @property
    def pad_token_id(self) -> int:
        """int: Id filling the positions after EOT (0)."""
        return 0

    def encode(self, text: str) -> List[int]:
        """Token ids of one text, without SOT / EOT.

        Args:
            text (str): Input text.

        Returns:
            List[int]: The ids, any length.
        """
        if not is_fast_path_text(text):
            return self._encode_slow(text)
        cache = self._word_cache
        ids: List[int] = []
        for word in text.lower().split():
            word_ids = cache.get(word)
            if word_ids is None:
                word_ids = self._encode_ascii_word(word)
            ids += word_ids
        return ids

    def _encode_ascii_word(self, word: str) -> Tuple[int, ...]:
        """Ids of one lower-case, whitespace-free fast-path word (cached)."""
        token_ids = self._bpe.token_ids
        ids = tuple(i for token in _ASCII_PRE_TOKEN_RE.findall(word)
                    for i in token_ids(token))
        if len(self._word_cache) >= self.cache_size:
            self._word_cache.clear()
        self._word_cache[word] = ids
        return ids

    def _encode_slow(self, text: str) -> List[int]:
        """Ids of any text through the full open_clip pipeline."""
        token_ids = self._bpe.token_ids
        ids: List[int] = []
        for token in _PRE_TOKEN_RE.findall(clean_text(text)):
            ids += token_ids(token)
        return ids

    def decode(self,
               ids: Union[Sequence[int], np.ndarray, 'torch.Tensor'],
               skip_special_tokens: bool = False) -> str:
        """Turn ids back into text, like open_clip's ``decode``.

        Word ends become spaces, so ``decode(encode('a red car'))`` is
        ``'a red car '``; punctuation comes back space-separated.

        Args:
            ids (Sequence[int] | np.ndarray | torch.Tensor): 1-D token ids.
            skip_special_tokens (bool): If True, drop SOT and stop at the first
                EOT, which also drops the padding of a tokenizer output row.
                Defaults to False.

        Returns:
            str: The decoded text.
        """
        if hasattr(ids, 'tolist'):  # a numpy array or a torch tensor
            ids = ids.tolist()
        if skip_special_tokens:
            ids = list(ids)
            if self.eot_token_id in ids:
                ids = ids[:ids.index(self.eot_token_id)]
            ids = [i for i in ids if i != self.sot_token_id]
        return self._bpe.decode(ids)

    def __call__(self,
                 texts: Union[str, Sequence[str]],
                 context_length: Optional[int] = None,
                 truncate: Optional[bool] = None,
                 return_tensors: str = 'pt'
                 ) -> Union['torch.Tensor', np.ndarray]:
        """Tokenize texts into a padded id tensor.

        Args:
            texts (str | Sequence[str]): One text or a list of N texts.
            context_length (int, optional): Output length per text; None uses
                ``self.context_length``. Defaults to None.
            truncate (bool, optional): How to treat a text longer than
                ``context_length`` (SOT and EOT included): True keeps its
                first ``context_length - 2`` tokens and ends it with EOT,
                False raises a ``ValueError``. None uses ``self.truncate``.
                Defaults to None.
            return_tensors (str): ``'pt'`` for a torch LongTensor, ``'np'``
                for an int64 numpy array (torch is then not imported).
                Defaults to ``'pt'``.

        Returns:
            torch.Tensor | np.ndarray: Shape ``[N, context_length]``
            (``N = 1`` for a single string).
        """
        if return_tensors not in ('pt', 'np'):
            raise ValueError(f"return_tensors={return_tensors!r}: use 'pt' "
                             "(torch) or 'np' (numpy).")
        if isinstance(texts, str):
            texts = [texts]
        length = self.context_length if context_length is None else \
            self._check_length(context_length)
        truncate = self.truncate if truncate is None else truncate
        sot, eot = self.sot_token_id, self.eot_token_id

        # Concatenate all rows, SOT/EOT included, then scatter them into the
        # zero-padded output in one numpy operation.
        flat: List[int] = []
        row_lengths: List[int] = []
        encode = self.encode
        for text in texts:
            ids = encode(text)
            num_tokens = len(ids) + 2
            if num_tokens <= length:
                flat.append(sot)
                flat += ids
                flat.append(eot)
                row_lengths.append(num_tokens)
            elif truncate:
                # open_clip: cut [SOT, *ids, EOT] to `length`, then force the
                # last kept position to EOT.
                row = ([sot] + ids)[:length]
                row[-1] = eot
                flat += row
                row_lengths.append(length)
            else:
                raise self._too_long_error(text, num_tokens, length)

        out = np.zeros((len(texts), length), dtype=np.int64)
        if flat:
            lengths = np.asarray(row_lengths, dtype=np.int64)
            row_starts = np.arange(len(texts), dtype=np.int64) * length
            flat_starts = np.cumsum(lengths) - lengths
            index = np.arange(len(flat), dtype=np.int64) + np.repeat(
                row_starts - flat_starts, lengths)
            out.reshape(-1)[index] = flat
        if return_tensors == 'np':
            return out
        import torch
        return torch.from_numpy(out)

    @staticmethod
    def _check_length(context_length: int) -> int:
        if int(context_length) < 1:
            raise ValueError(
                f'context_length must be positive, got {context_length}')
        return int(context_length)

    @staticmethod
    def _too_long_error(text: str, num_tokens: int,
                        context_length: int) -> ValueError:
        preview = text if len(text) <= 60 else text[:57] + '...'
        return ValueError(
            f'Text {preview!r} has {num_tokens} tokens (with <start_of_text> '
            f'and <end_of_text>), more than context_length={context_length}; '
            'pass truncate=True or shorten it.')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(vocab_size={self.vocab_size}, '
                f'context_length={self.context_length}, '
                f'truncate={self.truncate})')


_default_tokenizer: Optional[CLIPBPETokenizer] = None


def tokenize(texts: Union[str, Sequence[str]],
             context_length: int = 77,
             truncate: bool = False,
             return_tensors: str = 'pt') -> Union['torch.Tensor', np.ndarray]:
    """Tokenize with a shared :class:`CLIPBPETokenizer` (bundled vocabulary).

    The tokenizer is created on first use, so importing this module does not
    read the vocabulary.

    Args:
        texts (str | Sequence[str]): One text or a list of N texts.
        context_length (int): Output length per text. Defaults to 77.
        truncate (bool): Cut over-long texts (ending them with EOT) instead of
            raising a ``ValueError``. Defaults to False.
        return_tensors (str): ``'pt'`` (torch) or ``'np'`` (numpy, without
            importing torch). Defaults to ``'pt'``.

    Returns:
        torch.Tensor | np.ndarray: int64, shape ``[N, context_length]``.
    """
    global _default_tokenizer
    if _default_tokenizer is None:
        _default_tokenizer = CLIPBPETokenizer()
    return _default_tokenizer(
        texts, context_length=context_length, truncate=truncate,
        return_tensors=return_tensors)


if has_torch():
    # mmclip's registries are mmengine's (which needs torch); the
    # scoring-only install tokenizes without them (mmclip.dependencies).
    from mmclip.registry import TOKENIZER
    TOKENIZER.register_module(module=CLIPBPETokenizer)
