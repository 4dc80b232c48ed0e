"""Shared pieces of the checkpoint converters: errors and key renaming.

Every source layout is converted by a list of :class:`Rule` objects that map
one source key (a regular expression) to one mmclip key, optionally changing
the tensor (transpose, reshape). :func:`apply_rules` applies them and returns
the source keys no rule understood, so a converter can refuse a checkpoint
with parameters it would otherwise silently drop (layer scale, attention
pooling, ...), instead of producing a model that is quietly wrong.
"""
import os
import os.path as osp
import re
import uuid
from contextlib import contextmanager
from typing import (Callable, Dict, Iterable, Iterator, List, NamedTuple,
                    Optional, Tuple)

import torch

from mmclip.errors import shorten_list

# The keys of one mmclip transformer block, relative to ``resblocks.N.``.
BLOCK_PARAMS = (r'(?:ln_[12]\.(?:weight|bias)|attn\.in_proj_(?:weight|bias)'
                r'|attn\.out_proj\.(?:weight|bias)'
                r'|mlp\.c_(?:fc|proj)\.(?:weight|bias))')
_BLOCK = r'transformer\.resblocks\.\d+\.' + BLOCK_PARAMS

# Every key an mmclip ``CLIPModel`` (or image-only classifier) may hold. The
# converted state dict is checked against these so that no converter can hand
# out a key the model would not load.
MMCLIP_KEY_PATTERNS = (
    r'logit_scale',
    r'backbone\.(?:class_embedding|positional_embedding|proj|conv1\.weight'
    r'|ln_(?:pre|post)\.(?:weight|bias)|' + _BLOCK + ')',
    r'text_encoder\.(?:token_embedding\.weight|positional_embedding'
    r'|text_projection|ln_final\.(?:weight|bias)|' + _BLOCK + ')',
    # an mmpretrain classifier head, kept under its own names (mmpretrain.py)
    r'head\.[A-Za-z0-9_.]+',
)
_MMCLIP_KEY_RE = re.compile('|'.join(f'(?:{p})' for p in MMCLIP_KEY_PATTERNS))

# Buffers that are not weights: OpenAI's TorchScript archives carry the input
# resolution, context length and vocab size as tensors; attention masks and HF
# ``position_ids`` are recomputed by the model.
IGNORED_KEY_RE = re.compile(
    r'(?:.*\.)?(?:attn_mask|position_ids)$|^(?:input_resolution|context_length'
    r'|vocab_size)$')


class ConversionError(ValueError):
    """A checkpoint cannot be converted; the message says why and what to
    do."""


class UnknownLayoutError(ConversionError):
    """The checkpoint's keys match none of the recognised layouts."""


class Rule(NamedTuple):
    """One renaming rule.

    Attributes:
        pattern (str): Regular expression matched against the whole source
            key; its groups can be used in ``target``.
        target (str): Replacement, in :meth:`re.Match.expand` syntax
            (``\\1`` for the first group).
        fn (callable, optional): Applied to the tensor, e.g. a transpose.
    """
    pattern: str
    target: str
    fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None


def transpose(t: torch.Tensor) -> torch.Tensor:
    """``(out, in)`` linear weight -> ``(in, out)`` projection matrix."""
    return t.t().contiguous()


def squeeze_leading(t: torch.Tensor) -> torch.Tensor:
    """Drop the leading singleton dims mmpretrain keeps on its tokens:
    ``(1, 1, C) -> (C, )`` and ``(1, N, C) -> (N, C)``."""
    while t.ndim > 1 and t.shape[0] == 1:
        t = t[0]
    return t


# The slots of name templates (:func:`template_rules`) and what they match.
TEMPLATE_SLOTS = {
    'n': r'\d+',  # a block index
    'w': r'weight|bias',
    'i': r'[12]',  # which of a block's two norms
    'qkv': r'[qkv]',  # which attention input projection
}
_SLOT_RE = re.compile(r'\{(\w+)\}')


def template_rules(pairs: Iterable[Tuple[str, str]],
                   reverse: bool = False) -> List[Rule]:
    """Rules from ``(source name, mmclip name)`` templates, one table for
    both directions of a converter.

    A template is a parameter name with slots (:data:`TEMPLATE_SLOTS`), e.g.
    ``('encoder.layers.{n}.mlp.fc1.{w}',
    'transformer.resblocks.{n}.mlp.c_fc.{w}')``; each slot of the matched
    name is copied into the other.

    Args:
        pairs (Iterable[tuple[str, str]]): ``(source, mmclip)`` templates.
        reverse (bool): Rules from mmclip's names to the source's (export)
            instead of the source's to mmclip's. Defaults to False.

    Returns:
        list[Rule]: One rule per pair, without tensor functions.
    """

    def pattern(template: str) -> str:
        pieces = _SLOT_RE.split(template)  # literal, slot, literal, ...
        return ''.join(
            re.escape(piece) if i % 2 == 0 else
            f'(?P<{piece}>{TEMPLATE_SLOTS[piece]})'
            for i, piece in enumerate(pieces))

    def target(template: str) -> str:
        return _SLOT_RE.sub(r'\\g<\1>', template)

    rules = []
    for src, dst in pairs:
        if reverse:
            src, dst = dst, src
        rules.append(Rule(pattern(src), target(dst)))
    return rules


def prefixed(src: str, dst: str, rules: Iterable[Rule]) -> List[Rule]:
    """Return ``rules`` with a literal prefix added on both sides."""
    return [
        Rule(re.escape(src) + r.pattern, dst + r.target, r.fn) for r in rules
    ]


def apply_rules(
        state_dict: Dict[str, torch.Tensor],
        rules: List[Rule]) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Rename ``state_dict`` with the first matching rule of every key.

    Args:
        state_dict (dict[str, Tensor]): Source weights.
        rules (list[Rule]): Tried in order; the first full match wins.

    Returns:
        tuple[dict, list[str]]: The renamed weights and the source keys that
        matched no rule (ignorable buffers, see :data:`IGNORED_KEY_RE`, are
        dropped without being reported).
    """
    compiled = [(re.compile(r.pattern), r.target, r.fn) for r in rules]
    out, unknown = {}, []
    for key, value in state_dict.items():
        for regex, target, fn in compiled:
            match = regex.fullmatch(key)
            if match:
                new_key = match.expand(target)
                if new_key in out:
                    raise ConversionError(
                        f'Two source keys map to {new_key!r} (the second is '
                        f'{key!r}); the checkpoint mixes layouts.')
                out[new_key] = fn(value) if fn else value
                break
        else:
            if not IGNORED_KEY_RE.fullmatch(key):
                unknown.append(key)
    return out, unknown


def check_unknown(unknown: List[str], layout: str) -> None:
    """Raise when a converter met keys it does not understand.

    Args:
        unknown (list[str]): Source keys no rule matched.
        layout (str): Name of the layout, for the message.
    """
    if unknown:
        raise ConversionError(
            f'The {layout} checkpoint has {len(unknown)} parameter(s) mmclip '
            f'has no place for: {shorten_list(unknown, 8)}. This variant '
            '(e.g. layer scale, attention pooling, timm or HF text towers) '
            'is not supported by mmclip\'s CLIP towers; converting it would '
            'drop '
            'weights, so nothing was written.')


def convert_mmclip(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Keep the weights of an mmclip checkpoint, refusing foreign keys."""
    kept = {
        k: v
        for k, v in state_dict.items() if not IGNORED_KEY_RE.fullmatch(k)
    }
    check_unknown([k for k in kept if not _MMCLIP_KEY_RE.fullmatch(k)],
                  'mmclip')
    return kept


def check_mmclip_keys(state_dict: Dict[str, torch.Tensor]) -> None:
    """Make sure a converted state dict only holds keys mmclip can load."""
    bad = [k for k in state_dict if not _MMCLIP_KEY_RE.fullmatch(k)]
    if bad:
        raise ConversionError(
            f'Internal error: the converter produced keys mmclip does not '
            f'know: {bad[:8]}. Please report this with the source checkpoint '
            'layout.')


def strip_prefix(
    state_dict: Dict[str, torch.Tensor],
    prefixes: Iterable[str] = ('module.', '_orig_mod.')
) -> Dict[str, torch.Tensor]:
    """Remove wrapper prefixes carried by every key.

    DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) wrap the model
    and prefix all its keys; open_clip's training checkpoints keep them.

    Args:
        state_dict (dict[str, Tensor]): Weights.
        prefixes (Iterable[str]): Prefixes to strip, repeatedly, when *all*
            keys carry them. Defaults to ``('module.', '_orig_mod.')``.

    Returns:
        dict[str, Tensor]: The same tensors under the stripped keys.
    """
    changed = True
    while changed and state_dict:
        changed = False
        for prefix in prefixes:
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {
                    k[len(prefix):]: v
                    for k, v in state_dict.items()
                }
                changed = True
    return state_dict


@contextmanager
def staged_files(*paths: str) -> Iterator[List[str]]:
    """Write several output files all or nothing.

    Yields one temporary path beside each of ``paths`` (same folder, so the
    final rename is atomic); when the block ends without an error each is
    renamed onto its path, otherwise they are deleted and no output is
    touched. An interrupted conversion leaves no half-written checkpoint.

    Args:
        *paths (str): The files to write; their folders are created.

    Yields:
        list[str]: The temporary paths, in the order of ``paths``.
    """
    temps = []
    try:
        for path in paths:
            folder = osp.dirname(osp.abspath(path))
            os.makedirs(folder, exist_ok=True)
            # not mkstemp: its files are private (0600), outputs are not
            temps.append(
                osp.join(folder, f'.{osp.basename(path)}.'
                         f'{uuid.uuid4().hex[:12]}.part'))
        yield list(temps)
    except BaseException:
        for temp in temps:
            if osp.exists(temp):
                os.remove(temp)
        raise
    for temp, path in zip(temps, paths):
        os.replace(temp, path)
