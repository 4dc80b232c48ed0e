"""Every tool, run as a user runs it (a fresh folder, ``python tools/...``),
refuses a path that a config or argument names but that is not there with
one ``error: ...`` line naming the file and the fix, exit status 1, before
any work: no traceback."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from tiny_digits import write_tiny_digits

CONFIGS = osp.join(REPO_ROOT, 'configs', 'clip')
PRETRAIN = osp.join(CONFIGS, 'clip_vit-tiny-p8_1xb32-24e_digits-32px.py')
ZERO_SHOT = osp.join(CONFIGS, 'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')
FINE_TUNE = osp.join(CONFIGS, 'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px.py')


def run_tool(cwd, tool: str, *args: str) -> subprocess.CompletedProcess:
    """``python tools/{tool} ARGS`` in ``cwd``, with this checkout's mmclip."""
    return subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', tool), *args],
        cwd=str(cwd), capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path):
    """A user's folder with (a few of) the digits in data/digits."""
    write_tiny_digits(str(tmp_path / 'data' / 'digits'), 4, 4)
    return tmp_path


def test_fine_tune_before_pretraining(project):
    """The fine-tune config starts from the pretraining run's checkpoint
    (its ZeroShotInit's checkpoint): without it, one line that says how to
    make it, instead of a traceback after the runner is built."""
    err = one_error_line(run_tool(project, 'train.py', FINE_TUNE))
    assert ('work_dirs/clip_vit-tiny-p8_1xb32-24e_digits-32px/epoch_24.pth '
            f'does not exist (in {project})') in err
    assert 'model.init_cfg.checkpoint of' in err
    assert ('`python tools/train.py '
            f'{PRETRAIN}` first') in err
    assert '--cfg-options model.init_cfg.checkpoint=...' in err
    assert not (project / 'work_dirs').exists()  # no run was started


def test_a_missing_templates_file_of_the_zero_shot_head(project):
    checkpoint = project / 'epoch_1.pth'
    checkpoint.write_bytes(b'')  # never read: the check comes first
    err = one_error_line(run_tool(
        project, 'test.py', ZERO_SHOT, str(checkpoint), '--cfg-options',
        'model.predict_head.templates=my_templates.txt'))
    assert 'my_templates.txt does not exist' in err
    assert '--cfg-options model.predict_head.templates=...' in err


@pytest.mark.parametrize('tool,args,named', [
    ('deployment/pytorch2onnx.py',
     [ZERO_SHOT, 'converted.pth', '--out', 'work_dirs/onnx'], 'CHECKPOINT'),
    ('inference.py',
     ['photo.png', '--model', ZERO_SHOT, '--checkpoint', 'converted.pth'],
     '--checkpoint'),
    ('analysis_tools/linear_probe.py', [FINE_TUNE, 'converted.pth'],
     'CHECKPOINT'),
    ('model_converters/wise_ft.py',
     ['converted.pth', 'photo.png', 'work_dirs/wise_ft.pth'], 'ZERO_SHOT'),
])
def test_a_missing_checkpoint_argument(project, tool, args, named):
    (project / 'photo.png').write_bytes(b'')
    err = one_error_line(run_tool(project, tool, *args))
    assert err.startswith(f'error: {named} converted.pth does not exist '
                          f'(in {project})')
    assert 'tools/model_converters/clip_to_mmclip.py' in err
    assert not (project / 'work_dirs').exists()


def test_linear_probe_of_a_pretraining_config(project):
    """The pretraining config has captions, no labels (and no test split):
    the no-labels error the guide promises, not the missing split."""
    (project / 'clip.pth').write_bytes(b'')  # never read: labels come first
    err = one_error_line(run_tool(
        project, 'analysis_tools/linear_probe.py', PRETRAIN, 'clip.pth'))
    assert err.startswith(f'error: train_dataloader of {PRETRAIN} '
                          '(ImageTextDataset on data/digits/train.csv) has '
                          'no class labels (gt_label).')
    assert 'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px.py' in err


def test_a_caption_file_whose_captions_are_all_empty(tmp_path):
    """The caption fine-tune reads data/captions/train.csv; with every
    caption empty (a wrong column, an unfinished export) it would skip
    every sample as bad: one line naming the file, the column and the fix
    instead, before the run starts (no work_dirs, nothing read but the
    CSV)."""
    config = osp.join(CONFIGS,
                      'clip_vit-base-p32_caption-ft-8xb64-amp-10e_custom.py')
    data = tmp_path / 'data' / 'captions'
    data.mkdir(parents=True)
    (data / 'train.csv').write_text(
        'filepath,title,caption\n' +
        ''.join(f'images/{i}.jpg,,a photo {i}\n' for i in range(5)))
    err = one_error_line(run_tool(tmp_path, 'train.py', config))
    assert err.startswith('error: data/captions/train.csv has no caption: '
                          "column 'title' is empty in all its 5 records.")
    assert ("set caption_key to the column that holds the captions (its "
            "other columns: ['caption'])") in err
    assert (f'train_dataloader.dataset of {config}; `--cfg-options '
            'train_dataloader.dataset.caption_key=COLUMN`') in err
    assert not (tmp_path / 'work_dirs').exists()


def test_labels_that_the_class_names_do_not_cover(tmp_path):
    """The caption fine-tune's zero-shot validation reads val.csv's labels
    as lines of classnames.txt; a label past its last line (a class the
    file forgot) is one line naming both files and the fix, before the run
    starts."""
    config = osp.join(CONFIGS,
                      'clip_vit-base-p32_caption-ft-8xb64-amp-10e_custom.py')
    data = tmp_path / 'data' / 'captions'
    data.mkdir(parents=True)
    (data / 'train.csv').write_text(
        'filepath,title\n' +
        ''.join(f'images/{i}.jpg,a photo of {i}\n' for i in range(4)))
    (data / 'val.csv').write_text(
        'filepath,label\n' +
        ''.join(f'images/{i}.jpg,{i}\n' for i in range(4)))
    (data / 'classnames.txt').write_text('cat\ndog\n')
    err = one_error_line(run_tool(tmp_path, 'train.py', config))
    assert err.startswith(
        'error: data/captions/val.csv has 2 record(s) with labels 2, 3 that '
        'the class-name file data/captions/classnames.txt does not cover: '
        'it names 2 classes (labels 0-1). Add the missing class names, one '
        'a line in label order, or fix the labels.'), err
    assert (f'(val_dataloader.dataset of {config}; `--cfg-options '
            'val_dataloader.dataset.classes=FILE`') in err
    assert not (tmp_path / 'work_dirs').exists()


def test_a_checkpoint_of_the_other_kind(project):
    """tools/test.py with a CLIP checkpoint and a classifier config (and
    the reverse) would score a random head (or text tower): one line saying
    what the checkpoint is and what to use, before a work dir is
    written."""
    import torch
    from mmengine.config import Config

    import mmclip.models  # noqa: F401 (registers the models)
    from mmclip.registry import MODELS
    for config, other in ((FINE_TUNE, ZERO_SHOT), (ZERO_SHOT, FINE_TUNE)):
        model = MODELS.build(Config.fromfile(other).model)
        checkpoint = project / 'other_kind.pth'
        torch.save(dict(state_dict=model.state_dict()), checkpoint)
        err = one_error_line(run_tool(project, 'test.py', config,
                                      str(checkpoint)))
        kind = 'CLIP' if other == ZERO_SHOT else 'classifier'
        assert err.startswith(f"error: '{checkpoint}' is a {kind} "
                              'checkpoint'), err
        fix = ('evaluate it with a zero-shot config' if kind == 'CLIP' else
               'Use it with its classifier config')
        assert fix in err
        assert not (project / 'work_dirs').exists()
