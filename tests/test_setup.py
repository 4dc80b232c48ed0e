"""Packaging: a wheel built from the source distribution (as ``python -m
build`` does) carries configs, tools and the model index in
``mmclip/.mim``, where ``mim train/test mmclip`` and mmclip's config search
find them."""
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from conftest import copy_source_tree


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """``(sdist names, wheel names, wheel zip)`` built from a copy of the
    tree (the build writes build/ and *.egg-info next to setup.py)."""
    tmp = tmp_path_factory.mktemp('build')
    src = tmp / 'src'
    files = copy_source_tree(str(src))
    subprocess.run([sys.executable, 'setup.py', '-q', 'sdist', '-d',
                    str(tmp / 'sdist')], cwd=src, check=True,
                   capture_output=True, timeout=300)
    (sdist, ) = os.listdir(tmp / 'sdist')
    with tarfile.open(tmp / 'sdist' / sdist) as tar:
        tar.extractall(tmp / 'unpacked', filter='data')
        sdist_names = [m.name.split('/', 1)[1] for m in tar.getmembers()
                       if m.isfile()]
    (unpacked, ) = os.listdir(tmp / 'unpacked')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                    '--no-build-isolation', '-w', str(tmp / 'wheel'),
                    str(tmp / 'unpacked' / unpacked)], check=True,
                   capture_output=True, timeout=300)
    (wheel, ) = os.listdir(tmp / 'wheel')
    archive = zipfile.ZipFile(tmp / 'wheel' / wheel)
    return sdist_names, archive.namelist(), archive, files


def test_wheel_carries_tools_configs_and_index_for_mim(built):
    sdist_names, names, archive, files = built
    tools = [p for p in files if p.startswith('tools/')]
    configs = [p for p in files if p.startswith('configs/')]
    assert 'tools/train.py' in tools and 'tools/dist_train.sh' in tools
    for rel in tools + configs + ['model-index.yml']:
        assert rel in sdist_names, f'{rel} missing from the sdist'
        assert f'mmclip/.mim/{rel}' in names, f'{rel} missing from the wheel'
    # Where OpenMIM 0.3.9 looks: {package}/.mim/tools/{train,test}.py.
    for tool in ('train.py', 'test.py'):
        assert f'mmclip/.mim/tools/{tool}' in names
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
                   'slurm_test.sh'):
        mode = archive.getinfo(f'mmclip/.mim/tools/{script}').external_attr
        assert (mode >> 16) & 0o111, f'{script} is not executable'
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    assert not [n for n in names if n.startswith('tests/')]


def test_wheel_carries_the_search_page(built):
    """mmclip.search.server reads page.html next to itself."""
    sdist_names, names, archive, _ = built
    assert 'mmclip/search/page.html' in sdist_names
    assert b'id="results"' in archive.read('mmclip/search/page.html')
