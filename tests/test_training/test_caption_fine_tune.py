"""docs/own_data.md's loop through the command line, from a fresh folder:
convert foreign CLIP weights, prepare a caption set, caption-fine-tune with
the B/32 recipe (towers shrunk to the converted checkpoint's tiny widths),
test, WiSE-FT with the converted weights, test, and sweep alpha. It checks
that every step runs and hands the next what it needs, and that the
numbers agree between the tools; learning is measured on the digits CLIP in
test_digits_pretraining.py."""
import json
import os.path as osp
import re

import pytest
import torch
from test_user_loop import TOP1, run_tool

from conftest import REPO_ROOT

# Several tool runs (about two minutes on 2 CPU cores).
pytestmark = pytest.mark.slow

CAPTION_FT = osp.join(REPO_ROOT, 'configs', 'clip',
                      'clip_vit-base-p32_caption-ft-8xb64-amp-10e_custom.py')
# The validation line of the last epoch in the training log.
VAL_TOP1 = re.compile(r'Epoch\(val\) \[2\]\[\d+/\d+\]\s+accuracy/top1: '
                      r'(\d+\.\d+)')


def write_open_clip_weights(path):
    """An open_clip CLIP shaped like ViT-B/32 at a tiny width (patch 32 at
    224 px, OpenAI's vocabulary and context), random weights: what the
    user downloads, but small."""
    from open_clip.model import CLIP
    torch.manual_seed(0)
    model = CLIP(
        32,
        dict(layers=2, width=64, head_width=32, patch_size=32,
             image_size=224),
        dict(context_length=77, vocab_size=49408, width=64, heads=2,
             layers=2),
        quick_gelu=True)
    torch.save(model.state_dict(), path)


def test_convert_fine_tune_test_wise_ft_test(tmp_path):
    cwd = tmp_path / 'my_project'
    cwd.mkdir()
    write_open_clip_weights(cwd / 'open_clip_b32_tiny.pt')
    clip_ckpt = 'checkpoints/tiny_openai.pth'
    run_tool(cwd, 'model_converters/clip_to_mmclip.py',
             'open_clip_b32_tiny.pt', clip_ckpt, '--act', 'quick_gelu',
             '--vision-heads', '2', '--text-heads', '2')

    # The user's captions: data/captions/{train.csv, val.csv,
    # classnames.txt}, as the recipe reads them.
    run_tool(cwd, 'dataset_converters/prepare_shapes.py', 'data/captions',
             '--size', '64', '--num-train', '4', '--num-val', '2')
    # The recipe, sized for this model and machine (as a user's own
    # config would be).
    tiny = "dict(_delete_=True, embed_dims=64, num_layers=2, num_heads=2)"
    (cwd / 'my_caption_ft.py').write_text(f'''_base_ = [{CAPTION_FT!r}]
load_from = {clip_ckpt!r}
model = dict(
    vision_backbone=dict(arch={tiny}, out_channels=32),
    text_encoder=dict(arch={tiny}, out_channels=32))
train_dataloader = dict(batch_size=8, num_workers=0,
                        persistent_workers=False, pin_memory=False)
val_dataloader = dict(num_workers=0)
test_dataloader = dict(num_workers=0)
''')
    run_tool(cwd, 'train.py', 'my_caption_ft.py', '--threads', '1',
             '--cfg-options', 'train_cfg.max_epochs=2')
    work_dir = cwd / 'work_dirs' / 'my_caption_ft'
    tuned_ckpt = 'work_dirs/my_caption_ft/epoch_2.pth'
    assert (cwd / tuned_ckpt).is_file()
    log = next(work_dir.glob('*/*.log')).read_text()
    assert f'Load checkpoint from {clip_ckpt}' in log
    val_top1 = float(VAL_TOP1.findall(log)[-1])

    def test(checkpoint):
        out = run_tool(cwd, 'test.py', 'my_caption_ft.py', checkpoint,
                       '--threads', '1')
        return float(TOP1.findall(out)[-1])

    # The validation set is the test set: the same accuracy.
    assert test(tuned_ckpt) == pytest.approx(val_top1, abs=1e-3)
    before = test(clip_ckpt)

    # WiSE-FT of the two CLIP models: no config needed.
    run_tool(cwd, 'model_converters/wise_ft.py', clip_ckpt, tuned_ckpt,
             'work_dirs/wise_ft.pth', '--alpha', '0.5')
    saved = torch.load(cwd / 'work_dirs' / 'wise_ft.pth', weights_only=True)
    start = torch.load(cwd / clip_ckpt, weights_only=True)['state_dict']
    assert saved['state_dict'].keys() == start.keys()
    assert saved['meta']['wise_ft']['alpha'] == 0.5
    assert 0 <= test('work_dirs/wise_ft.pth') <= 100

    # The sweep with the recipe config: its endpoints score as testing them.
    out = run_tool(cwd, 'model_converters/wise_ft.py', clip_ckpt,
                   tuned_ckpt, 'work_dirs/wise_ft.png', '--alphas', '0', '1',
                   '--config', 'my_caption_ft.py', '--cfg-options',
                   'cpu_threads=1')
    assert 'accuracy/top1' in out
    rows = json.loads((cwd / 'work_dirs' / 'wise_ft.json').read_text())
    assert [r['alpha'] for r in rows] == [0, 1]
    assert rows[0]['accuracy/top1'] == pytest.approx(before, abs=1e-3)
    assert rows[1]['accuracy/top1'] == pytest.approx(val_top1, abs=1e-3)
    assert (cwd / 'work_dirs' / 'wise_ft.png').stat().st_size > 0
