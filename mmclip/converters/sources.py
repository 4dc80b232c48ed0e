"""What a source records besides its weights: activation, heads, eps.

The MLP activation is the one setting that cannot be read off the weights
and silently costs accuracy when wrong (QuickGELU for OpenAI's weights, GELU
for most LAION/DataComp ones). :func:`choose_activation` takes it from the
most reliable place available and warns when it has to guess.
"""
import warnings
from typing import Dict, Optional, Tuple

from .hf import hf_tower_settings
from .mmpretrain import MMPRETRAIN_VIT_LN_EPS

# ``--act`` spellings -> mmclip activation type
ACT_ALIASES = {
    'quick_gelu': 'QuickGELU',
    'quickgelu': 'QuickGELU',
    'gelu': 'GELU'
}
# LayerNorm epsilon of mmclip's towers (and OpenAI's).
MMCLIP_LN_EPS = 1e-5
# The layouts of transformers' models, whose config.json says the rest.
HF_LAYOUTS = ('hf', 'hf_cls')


class ActivationWarning(UserWarning):
    """The MLP activation of the converted model is a guess."""


def act_type(act: str) -> str:
    """Map ``'quick_gelu'``/``'gelu'`` (any case, ``-`` or ``_``) to mmclip's
    activation type ``'QuickGELU'``/``'GELU'``."""
    key = act.replace('-', '_').lower()
    if key not in ACT_ALIASES:
        raise ValueError(f'Unknown activation {act!r}: use "quick_gelu" '
                         '(OpenAI weights) or "gelu" (most LAION weights).')
    return ACT_ALIASES[key]


def _both(act: str) -> Dict[str, str]:
    return dict(vision=act, text=act)


def _from_mmclip_meta(meta: dict):
    cfg = meta.get('model_cfg') or {}
    acts = {
        tower: ((cfg.get(key) or {}).get('act_cfg') or {}).get('type')
        for tower, key in (('vision', 'vision_backbone'), ('text',
                                                           'text_encoder'))
    }
    if not acts['vision']:
        return None
    acts['text'] = acts['text'] or acts['vision']
    return acts, bool(meta.get('act_certain')), (
        f'meta of the mmclip checkpoint: {meta.get("act_reason")}')


def source_activation(layout: str, hints: dict,
                      settings: dict) -> Tuple[Dict[str, str], bool, str]:
    """The activation the source implies.

    Args:
        layout (str): Detected layout.
        hints (dict): ``SourceCheckpoint.hints``.
        settings (dict): From :func:`source_settings`.

    Returns:
        tuple[dict, bool, str]: ``{'vision': type, 'text': type}``, whether
        it is certain, and why.
    """
    if layout == 'torchscript':
        return _both('QuickGELU'), True, (
            "OpenAI's TorchScript models use QuickGELU")
    if layout in HF_LAYOUTS and 'hf_config' in hints:
        acts = {
            t: s['act_type']
            for t, s in settings.items() if 'act_type' in s
        }
        acts.setdefault('text', acts.get('vision'))
        acts.setdefault('vision', acts['text'])
        return acts, True, "hidden_act in transformers' config.json"
    if layout == 'mmpretrain_cls':
        return _both('GELU'), True, (
            "mmpretrain's CLIP classifier configs use the default GELU (the "
            "weights are timm's GELU fine-tunes)")
    if layout == 'mmpretrain_clip':
        return _both('QuickGELU'), True, (
            "mmpretrain's zero-shot CLIP configs use QuickGELU")
    if layout == 'mmclip' and 'mmclip_meta' in hints:
        found = _from_mmclip_meta(hints['mmclip_meta'])
        if found:
            return found
    oc = hints.get('open_clip_config')
    if layout == 'open_clip' and oc is not None:
        quick = bool(oc['model_cfg'].get('quick_gelu', False))
        return _both('QuickGELU' if quick else 'GELU'), True, (
            f'quick_gelu={quick} in open_clip_config.json')
    name = hints.get('run_name')
    if layout == 'open_clip' and name:
        # open_clip's default run name embeds "model_<model name>"
        if 'quickgelu' in name.lower().replace('-', '').replace('_', ''):
            return _both('QuickGELU'), True, (
                f'open_clip run name {name!r} names a -quickgelu model')
        return _both('GELU'), False, (
            f'open_clip run name {name!r} names no -quickgelu model; it may '
            'still have been trained with --force-quick-gelu')
    return _both('QuickGELU'), False, (
        'the checkpoint does not record it; defaulting to QuickGELU')


def choose_activation(layout: str, hints: dict, settings: dict,
                      act: Optional[str],
                      path: str) -> Tuple[Dict[str, str], bool, str]:
    """Resolve the activation, warning (:class:`ActivationWarning`) when it
    is a guess or when ``act`` overrides what the source says.

    Args:
        layout (str): Detected layout.
        hints (dict): ``SourceCheckpoint.hints``.
        settings (dict): From :func:`source_settings`.
        act (str, optional): The user's choice (``--act``).
        path (str): Source file, for the warning.

    Returns:
        tuple[dict, bool, str]: As :func:`source_activation`.
    """
    acts, certain, reason = source_activation(layout, hints, settings)
    if act is not None:
        forced = act_type(act)
        if certain and forced != acts['vision']:
            warnings.warn(
                f'act={act!r} overrides {acts["vision"]} '
                f'({reason}).', ActivationWarning)
        return _both(forced), True, 'given by the user'
    if not certain:
        warnings.warn(
            f'{path}: the MLP activation is uncertain ({reason}); using '
            f'{acts["vision"]}. OpenAI weights use QuickGELU, most LAION/'
            'DataComp open_clip weights use GELU; the wrong one costs '
            'accuracy silently. Pass --act quick_gelu or --act gelu (or '
            'act=...) to choose.', ActivationWarning)
    return acts, certain, reason


def source_settings(layout: str, hints: dict) -> Dict[str, dict]:
    """Head counts, LayerNorm eps and EOT id the source records besides the
    weights.

    Args:
        layout (str): Detected layout.
        hints (dict): ``SourceCheckpoint.hints``.

    Returns:
        dict: ``{'vision': {...}, 'text': {...}}`` with any of
        ``num_heads``, ``layer_norm_eps``, ``eot_token_id``, ``pool_type``
        (and ``act_type`` for transformers).
    """
    settings = dict(vision={}, text={})
    if layout in HF_LAYOUTS and 'hf_config' in hints:
        settings.update(hf_tower_settings(hints['hf_config']))
    if layout == 'hf_cls':
        # CLIPForImageClassification averages the patch tokens
        settings['vision'] = dict(settings['vision'], pool_type='avg')
    oc = hints.get('open_clip_config')
    if layout == 'open_clip' and oc is not None:
        v_cfg = oc['model_cfg'].get('vision_cfg') or {}
        t_cfg = oc['model_cfg'].get('text_cfg') or {}
        if isinstance(v_cfg.get('width'), int):
            settings['vision']['num_heads'] = \
                v_cfg['width'] // v_cfg.get('head_width', 64)
        if isinstance(t_cfg.get('heads'), int):
            settings['text']['num_heads'] = t_cfg['heads']
    if layout.startswith('mmpretrain'):
        settings['vision']['layer_norm_eps'] = MMPRETRAIN_VIT_LN_EPS
    if layout == 'mmclip' and 'mmclip_meta' in hints:
        meta = hints['mmclip_meta']
        arch = meta.get('arch') or {}
        for tower in ('vision', 'text'):
            if isinstance(arch.get(tower), dict):
                settings[tower]['num_heads'] = arch[tower].get('num_heads')
        model_cfg = meta.get('model_cfg') or {}
        text_cfg = model_cfg.get('text_encoder') or {}
        settings['text']['eot_token_id'] = text_cfg.get('eot_token_id')
        vision_cfg = model_cfg.get('vision_backbone') or {}
        if vision_cfg.get('pool_type'):
            settings['vision']['pool_type'] = vision_cfg['pool_type']
    return settings
