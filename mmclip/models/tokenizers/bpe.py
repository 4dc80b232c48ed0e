"""Byte-level BPE vocabulary and merge engine used by the CLIP tokenizer.

The bundled ``bpe_simple_vocab_16e6.txt.gz`` is OpenAI's CLIP merge list
(MIT License, Copyright (c) 2021 OpenAI, https://github.com/openai/CLIP), the
same file that ``open_clip`` ships. It is package data here so that mmclip can
tokenize offline without ``open_clip`` installed.

Token ids are not stored anywhere: they follow from the order of the merge
list, exactly as in OpenAI CLIP / open_clip / HuggingFace ``CLIPTokenizer``:

- ids ``0..255``: the 256 byte symbols (in :func:`bytes_to_unicode` order),
- ids ``256..511``: the same symbols with the end-of-word marker ``</w>``,
- one id per merge, in file order (the merged pair joined together),
- the special tokens last (``<start_of_text>`` = 49406 and
  ``<end_of_text>`` = 49407 for the bundled file).
"""
import gzip
import os.path as osp
from typing import Dict, Iterable, List, Sequence, Tuple

DEFAULT_BPE_PATH = osp.join(
    osp.dirname(osp.abspath(__file__)), 'bpe_simple_vocab_16e6.txt.gz')

#: OpenAI CLIP keeps this many merges (49152 ids minus 256 bytes minus the 2
#: special tokens); the file itself holds many more candidate merges.
NUM_MERGES = 49152 - 256 - 2

END_OF_WORD = '</w>'


def bytes_to_unicode() -> Dict[int, str]:
    """Map every byte value to a printable, non-whitespace unicode character.

    BPE works on strings, so each UTF-8 byte gets a visible stand-in. Bytes
    that are already printable Latin-1 characters stand for themselves; the
    others (controls, space, soft hyphen, ...) are moved to ``chr(256 + k)``
    in increasing byte order. This is the table OpenAI CLIP uses, so vocabulary
    strings written with it match the merge file.

    Returns:
        Dict[int, str]: ``byte value -> single character``, 256 entries, in
        vocabulary order (printable bytes first).
    """
    printable = [
        *range(ord('!'), ord('~') + 1),
        *range(ord('\xa1'), ord('\xac') + 1),
        *range(ord('\xae'), ord('\xff') + 1),
    ]
    table = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in table)
    for k, b in enumerate(shifted):
        table[b] = chr(256 + k)
    return table


def load_merges(path: str) -> List[Tuple[str, str]]:
    """Read a CLIP merge list.

    Accepts OpenAI's gzipped ``bpe_simple_vocab_16e6.txt.gz`` as well as a
    plain (or gzipped) HuggingFace ``merges.txt``. Both start with a
    ``#version: ...`` header line, which is skipped; like OpenAI CLIP only the
    first :data:`NUM_MERGES` merges are used.

    Args:
        path (str): Path of the merge file.

    Returns:
        List[Tuple[str, str]]: The merges, highest priority first.
    """
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:2] == b'\x1f\x8b':  # gzip magic, whatever the file is named
        raw = gzip.decompress(raw)
    # maxsplit stops early: the file has ~260k lines, we need ~49k.
    lines = raw.decode('utf-8').split('\n', NUM_MERGES + 1)
    if lines and '#version' in lines[0]:
        lines = lines[1:]
    merges = []
    for line in lines[:NUM_MERGES]:
        pair = line.split()
        if not pair:  # trailing newline of a short merges.txt
            continue
        if len(pair) != 2:
            raise ValueError(f'Bad merge line {line!r} in {path}')
        merges.append((pair[0], pair[1]))
    return merges


class BytePairEncoder:
    """Byte-level BPE over a merge list, with a per-token result cache.

    Args:
        merges (Sequence[Tuple[str, str]]): Merge rules, highest priority
            first, written with :func:`bytes_to_unicode` symbols.
        special_tokens (Sequence[str]): Tokens appended to the vocabulary
            after the merges. A pre-token equal to one of them maps straight
            to its id instead of being split into bytes.
        cache_size (int): Most pre-tokens whose ids are remembered; the cache
            is emptied when it grows past this. Defaults to 100000.
    """

    def __init__(self,
                 merges: Sequence[Tuple[str, str]],
                 special_tokens: Sequence[str],
                 cache_size: int = 100000):
        self.byte_encoder = bytes_to_unicode()
        symbols = list(self.byte_encoder.values())
        vocab = symbols + [s + END_OF_WORD for s in symbols]
        vocab += [first + second for first, second in merges]
        vocab += list(special_tokens)
        # Build with "later entry wins" semantics, like a dict over the
        # vocabulary list, so that even a merge file with duplicates gets the
        # same ids as the reference implementation.
        self.encoder: Dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.ranks: Dict[Tuple[str, str], int] = {
            pair: i
            for i, pair in enumerate(merges)
        }
        self.vocab = vocab
        # Maps each byte symbol to the character with that byte's code point,
        # so ``str.translate`` + latin-1 encoding recovers the raw bytes.
        self._byte_decoder = {
            ord(c): chr(b)
            for b, c in self.byte_encoder.items()
        }
        self.special_ids = {tok: self.encoder[tok] for tok in special_tokens}
        self.cache_size = cache_size
        self._cache: Dict[str, Tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.vocab)

    def token_ids(self, token: str) -> Tuple[int, ...]:
        """Ids of one pre-token (one regex match of the CLIP pattern).

        Args:
            token (str): A non-empty pre-token in its original (cleaned)
                characters, not yet byte-encoded.

        Returns:
            Tuple[int, ...]: Its BPE token ids.
        """
        ids = self._cache.get(token)
        if ids is None:
            special = self.special_ids.get(token)
            if special is not None:
                ids = (special, )
            else:
                encoder = self.encoder
                ids = tuple(encoder[s] for s in self._merge(token))
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[token] = ids
        return ids

    def _merge(self, token: str) -> List[str]:
        """Apply the merges to one pre-token, return its final symbols."""
        byte_encoder = self.byte_encoder
        word = [byte_encoder[b] for b in token.encode('utf-8')]
        # The end-of-word marker is glued to the last symbol, so a merge can
        # tell word-final pieces ("ing</w>") from inner ones ("ing").
        word[-1] += END_OF_WORD
        ranks = self.ranks
        while len(word) > 1:
            # Pick the adjacent pair with the best (lowest) merge rank.
            best_rank = None
            for pair in zip(word, word[1:]):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None
                                         or rank < best_rank):
                    best_rank, best = rank, pair
            if best_rank is None:
                break
            first, second = best
            # Merge every occurrence, scanning left to right without overlap
            # ("a a a" with merge "a a" gives "aa a").
            merged, i, n = [], 0, len(word)
            while i < n:
                if i + 1 < n and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids back into text; ``</w>`` markers become spaces.

        Args:
            ids (Iterable[int]): Token ids.

        Returns:
            str: The text; invalid UTF-8 is replaced by U+FFFD.
        """
        vocab = self.vocab
        symbols = ''.join(vocab[int(i)] for i in ids)
        data = symbols.translate(self._byte_decoder).encode('latin-1')
        return data.decode('utf-8', errors='replace').replace(END_OF_WORD, ' ')
