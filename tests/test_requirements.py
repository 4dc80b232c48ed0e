"""Requirements: ``requirements/*.txt`` declare ranges, so installing mmclip
into an existing mmpretrain environment keeps its torch;
``requirements/constraints.txt`` pins the exact releases ``make demo`` and
``make test`` install.

The lower end of every range is tested: ``test_lower_ends_kept_and_run``
installs them into a fresh environment (torch 2.6.0 comes from the package
index, about 3 GB with its CUDA libraries), then ``pip install .``, which
must keep every one of them, and runs ``tests/installed_smoke.py`` there.
The CPU build of torch on this machine's disk cannot serve: no torchvision on
the index imports beside it ("operator torchvision::nms does not exist").
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from conftest import REPO_ROOT, copy_source_tree

# What an mmpretrain environment at the lower ends holds; the claim is in
# requirements/runtime.txt and mminstall.txt (test_lower_ends_are_claimed).
LOWER_ENDS = {
    'torch': '2.6.0',
    'torchvision': '0.21.0',
    'mmengine': '0.10.7',
    'mmpretrain': '1.2.0',
    'mmcv-lite': '2.0.0',
    'webdataset': '1.0.2',
}
RANGED = ('runtime', 'mminstall')
ALL = RANGED + ('optional', 'tests', 'deploy', 'search', 'parity')
# pip's words when it cannot reach the index (not when a release is missing).
UNREACHABLE = re.compile(
    r'NewConnectionError|Failed to establish a new connection|'
    r'Temporary failure in name resolution|Network is unreachable|'
    r'Max retries exceeded|ConnectTimeout|ReadTimeout')


def requirements(name: str) -> list:
    """The :class:`Requirement` lines of ``requirements/{name}.txt``."""
    with open(osp.join(REPO_ROOT, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [Requirement(line) for line in lines if line]


def pins() -> dict:
    """``{name: version}`` of ``requirements/constraints.txt``."""
    return {req.name.lower(): next(iter(req.specifier)).version
            for req in requirements('constraints')}


def canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def test_install_requirements_are_ranges():
    """No exact pin in what ``pip install mmclip`` requires: an exact torch
    would replace the one of the environment mmclip is installed into."""
    for name in RANGED:
        for req in requirements(name):
            assert not any(spec.operator == '=='
                           for spec in req.specifier), (
                f'requirements/{name}.txt pins {req}; declare a range and '
                'put the exact release in requirements/constraints.txt')


def test_lower_ends_are_claimed():
    """Each lower end the slow test installs is the ``>=`` bound of its
    requirement (the claim and the test cannot drift apart)."""
    bounds = {canonical(req.name): spec.version
              for name in RANGED for req in requirements(name)
              for spec in req.specifier if spec.operator == '>='}
    assert bounds == LOWER_ENDS


def test_constraints_pin_every_requirement_inside_its_range():
    """``make`` installs with ``-c requirements/constraints.txt``: every
    requirement has one exact release there, and that release is in the
    declared range."""
    pinned = {canonical(name): version for name, version in pins().items()}
    for name in ALL:
        for req in requirements(name):
            version = pinned.get(canonical(req.name))
            assert version, f'{req.name} has no pin in constraints.txt'
            assert req.specifier.contains(version, prereleases=True), (
                f'constraints.txt pins {req.name}=={version}, outside '
                f'requirements/{name}.txt\'s {req}')


def test_install_requires_are_the_ranges(tmp_path):
    """``setup.py`` hands pip the ranges, not the constraints."""
    src = tmp_path / 'src'
    copy_source_tree(str(src))
    subprocess.run([sys.executable, 'setup.py', '-q', 'egg_info', '-e',
                    str(tmp_path)], cwd=src, check=True, capture_output=True,
                   timeout=120)
    with open(tmp_path / 'mmclip.egg-info' / 'requires.txt') as f:
        # The unconditional requirements come before the extras' sections.
        install_requires = f.read().split('\n\n')[0].split()
    assert sorted(str(Requirement(line)) for line in install_requires) == \
        sorted(str(req) for name in RANGED for req in requirements(name))


def run(args, **kwargs) -> subprocess.CompletedProcess:
    """``args`` without the checkout on ``PYTHONPATH`` (the environments
    below must see only what is installed in them)."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.run(args, capture_output=True, text=True,
                          env=dict(env, OMP_NUM_THREADS='1'), **kwargs)


def installed(python: str) -> dict:
    """``{canonical name: version}`` of the environment of ``python``."""
    out = run([python, '-m', 'pip', 'list', '--format=json'], check=True,
              timeout=120).stdout
    return {canonical(p['name']): p['version'] for p in json.loads(out)}


def pip_install(python: str, *args, timeout: int = 900):
    result = run([python, '-m', 'pip', 'install', *args], timeout=timeout)
    assert result.returncode == 0, (
        f'pip install {" ".join(args)} failed:\n'
        f'{result.stdout[-3000:]}{result.stderr[-3000:]}')


@pytest.mark.slow
def test_lower_ends_kept_and_run(tmp_path):
    """``pip install .`` into an environment holding the lower ends keeps
    them all, and mmclip runs there (about 2-3 minutes here, most of it
    installing torch 2.6.0)."""
    probe = run([sys.executable, '-m', 'pip', 'download', '--no-deps',
                 '--dest', str(tmp_path / 'probe'),
                 f'mmengine=={LOWER_ENDS["mmengine"]}'], timeout=300)
    if probe.returncode and UNREACHABLE.search(probe.stdout + probe.stderr):
        pytest.skip('the package index is unreachable, and torch '
                    f'{LOWER_ENDS["torch"]} comes from it: '
                    f'{probe.stderr.strip().splitlines()[-1]}')
    assert probe.returncode == 0, probe.stdout + probe.stderr

    env = tmp_path / 'env'
    run([sys.executable, '-m', 'venv', str(env)], check=True, timeout=300)
    python = str(env / 'bin' / 'python')
    # The environment mmclip is installed into: the lower ends, and
    # transformers (beside which mmengine < 0.10.6 fails to import).
    pip_install(python, *(f'{name}=={version}'
                          for name, version in LOWER_ENDS.items()),
                'setuptools<82',
                f'transformers=={pins()["transformers"]}')
    before = installed(python)

    src = tmp_path / 'src'
    copy_source_tree(str(src))
    pip_install(python, str(src))
    after = installed(python)
    assert after.get('mmclip'), 'mmclip was not installed'
    changed = {name: (version, after.get(name))
               for name, version in before.items()
               if after.get(name) != version}
    assert not changed, f'pip install . changed {changed}'

    smoke = run([python, osp.join(REPO_ROOT, 'tests', 'installed_smoke.py'),
                 str(tmp_path / 'smoke.pth')], cwd=tmp_path, timeout=600)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert f'site-packages/mmclip/__init__.py, torch ' \
           f'{LOWER_ENDS["torch"]}' in smoke.stdout, smoke.stdout
    assert 'smoke ok' in smoke.stdout
