"""Shared fixtures: tiny tower configs (fast) and the repo root."""
import os.path as osp

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_VISION = dict(embed_dims=64, num_layers=2, num_heads=4, proj_dims=32)
TINY_TEXT = dict(embed_dims=48, num_layers=2, num_heads=4, proj_dims=32)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_clip_cfg():
    """Config of a tiny CLIPModel (random weights, builds in milliseconds)."""
    return tiny_clip_config()


def tiny_clip_config() -> dict:
    """:func:`tiny_clip_cfg` for code that cannot take fixtures (spawned
    processes)."""
    return dict(
        type='CLIPModel',
        vision_backbone=dict(
            type='CLIPVisionTransformer', arch=dict(TINY_VISION),
            img_size=32, patch_size=8),
        text_encoder=dict(type='CLIPTextTransformer', arch=dict(TINY_TEXT)),
        tokenizer=dict(type='CLIPBPETokenizer'))


def load_tool(relpath: str):
    """Import a script under ``tools/`` as a module (tools are not a package)."""
    import importlib.util
    path = osp.join(REPO_ROOT, 'tools', relpath)
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.splitext(osp.basename(relpath))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def mm_log():
    """Messages logged through mmengine's current MMLogger during a test
    (MMLogger does not propagate to pytest's caplog)."""
    import logging
    from mmengine.logging import MMLogger
    messages = []

    class Collect(logging.Handler):

        def emit(self, record):
            messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect(level=logging.DEBUG)
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)
