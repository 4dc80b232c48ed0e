"""tools/search/index.py and query.py: the chain from a fresh folder
outside the repository through the command line, and one ``error:`` line
for each mistake a user can fix."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from PIL import Image
from skimage import data as skdata

from conftest import REPO_ROOT, load_tool

MODEL = 'clip_vit-tiny-p8_zeroshot-cls_digits-32px'


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    """A user's folder: photos (one corrupt, one not an image) and the tiny
    model's weights."""
    from mmclip.apis import get_model
    root = tmp_path_factory.mktemp('project')
    photos = root / 'photos' / '2024'
    photos.mkdir(parents=True)
    for name in ('astronaut', 'chelsea', 'coffee', 'rocket'):
        image = Image.fromarray(getattr(skdata, name)()).convert('RGB')
        image.resize((80, 60)).save(photos / f'{name}.jpg')
    (photos / 'broken.jpg').write_bytes(b'\xff\xd8\xff broken')
    (root / 'photos' / 'readme.md').write_text('# my photos')
    torch.manual_seed(0)
    torch.save({'state_dict': get_model(MODEL).state_dict()},
               root / 'tiny.pth')
    return root


def run_tool(cwd, tool, *args, status=0):
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'search', tool),
         *args], cwd=str(cwd), capture_output=True, text=True, timeout=600,
        env=dict(os.environ, HOME=str(cwd)))
    assert proc.returncode == status, (proc.stdout[-2000:],
                                       proc.stderr[-3000:])
    return proc.stdout, proc.stderr


@pytest.mark.slow
def test_index_query_by_text_and_image_from_any_folder(project):
    out, _ = run_tool(project, 'index.py', 'photos', '--out', 'my_index',
                      '--model', MODEL, '--checkpoint', 'tiny.pth')
    assert 'my_index: 4 images (4 added, 0 already indexed)' in out
    assert 'skipped 1 unreadable images' in out and 'broken.jpg' in out
    assert 'readme.md' in out and 'faiss index: exact' in out
    out, _ = run_tool(project, 'index.py', 'photos', '--out', 'my_index',
                      '--model', MODEL, '--checkpoint', 'tiny.pth')
    assert '(0 added, 4 already indexed)' in out

    # From another folder, the index found by its path.
    elsewhere = project / 'elsewhere'
    elsewhere.mkdir()
    out, _ = run_tool(elsewhere, 'query.py', '../my_index', 'a cat', '-k',
                      '3', '--json', 'hits.json')
    lines = [line for line in out.splitlines() if line[:3].strip().isdigit()]
    assert len(lines) == 3 and '3 hits for "a cat"' in out
    sheet = elsewhere / 'work_dirs' / 'search' / 'my_index' / 'a_cat.png'
    assert f'contact sheet: {osp.relpath(sheet, elsewhere)}' in out
    assert Image.open(sheet).size[0] > 3 * 192
    out, _ = run_tool(elsewhere, 'query.py', '../my_index', '--image',
                      '../photos/2024/coffee.jpg', '-k', '2', '--sheet',
                      'like_coffee.png')
    first = out.splitlines()[1].split()
    assert first[0] == '1' and float(first[1]) == pytest.approx(1, abs=1e-3)
    assert first[2].endswith('coffee.jpg')
    assert (elsewhere / 'like_coffee.png').is_file()


@pytest.fixture(scope='module')
def index(project, tmp_path_factory):
    out = tmp_path_factory.mktemp('idx') / 'index'
    assert load_tool('search/index.py').main([
        str(project / 'photos'), '--out', str(out), '--model', MODEL,
        '--checkpoint', str(project / 'tiny.pth')]) == 0
    return str(out)


@pytest.mark.parametrize('argv,message', [
    (['{index}', '  '], 'query text is empty'),
    (['{index}'], 'exactly one of them'),
    (['{index}', 'cat', '--image', 'x.jpg'], 'exactly one of them'),
    (['{index}', '--image', '{photos}/nope.jpg'], 'No such image file'),
    (['{index}', '--image', '{photos}/2024/broken.jpg'],
     'broken.jpg.*not a readable image'),
    (['{photos}', 'cat'], 'not an index folder.*tools/search/index.py'),
    (['{index}', 'cat', '--model', 'clip_vit-base-p32_zeroshot-cls_in1k'],
     "built with model='clip_vit-tiny-p8.*not model='clip_vit-base-p32"),
    (['{index}', 'cat', '--nprobe', '4'], 'approximate faiss indices'),
])
def test_query_errors_are_one_line(index, project, capsys, argv, message):
    import re
    argv = [a.format(index=index, photos=project / 'photos') for a in argv]
    assert load_tool('search/query.py').main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err
    assert re.search(message, err), err


CKPT = ['--checkpoint', '{project}/tiny.pth']


@pytest.mark.parametrize('argv,message', [
    (['{photos}/nope', '--out', '{tmp}/i', *CKPT], 'nope.*does not exist'),
    (['{project}/tiny.pth', '--out', '{tmp}/i', *CKPT],
     'put it in a folder'),
    (['{photos}', '--out', '{tmp}/i', '--checkpoint', '{project}/x.pth'],
     'x.pth'),
    (['{photos}', '--out', '{index}'],  # the index has weights, this not
     'checkpoint=None.*same --model / --checkpoint'),
    (['{photos}', '--out', '{photos}', *CKPT], 'not an index folder'),
    (['{photos}', '--out', '{tmp}/i', '--index-type', 'IVF4096,Flat', *CKPT],
     'IVF4096,Flat.*needs at least 4096 embeddings'),
    (['{photos}', '--out', '{tmp}/i', '--index-type', 'IVF9,Flta', *CKPT],
     "faiss does not know the index type 'IVF9,Flta'"),
])
def test_index_errors_are_one_line(index, project, tmp_path, capsys, argv,
                                   message):
    import re
    argv = [a.format(index=index, photos=project / 'photos', tmp=tmp_path,
                     project=project) for a in argv]
    assert load_tool('search/index.py').main(argv + ['--model', MODEL]) == 1
    # The progress bar may come first (the IVF error follows the embedding,
    # which is kept: a re-run with 'exact' only builds the index).
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('error: ')
    assert re.search(message, err[-1]), err
    if 'Flta' in argv:  # refused before any image was embedded
        assert not any('Indexing' in line for line in err)


def test_int8_index_prints_its_recall(project, tmp_path, capsys):
    """--int8 EXPORT_DIR: the images are embedded by the export's int8
    image tower (pytorch2onnx.py --int8) and the recall@10 of its results
    against float32 is printed."""
    import re

    from mmclip.apis import get_model
    from mmclip.deployment import export_onnx
    from mmclip.deployment.quantize import quantize_image_tower
    export = str(tmp_path / 'onnx')
    export_onnx(get_model(MODEL, str(project / 'tiny.pth')), export,
                verify=False)
    quantize_image_tower(export)
    assert load_tool('search/index.py').main([
        str(project / 'photos'), '--out', str(tmp_path / 'idx'), '--model',
        MODEL, '--checkpoint', str(project / 'tiny.pth'), '--int8', export
    ]) == 0
    out = capsys.readouterr().out
    line = re.search(r'int8 image tower: recall@10 against float32 on 4 of '
                     r'the images: text queries (\S+), image queries (\S+)',
                     out)
    assert line, out
    assert all(0 <= float(v) <= 1 for v in line.groups())
