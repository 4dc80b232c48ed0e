"""The tree is clean under OpenMMLab's linters: flake8 (79 columns) and
isort with the settings in ``setup.cfg``, the versions pinned in
``requirements/tests.txt`` and ``.pre-commit-config.yaml``.

To fix what this reports: ``isort mmclip tools tests configs setup.py``
reorders imports; flake8's findings are fixed by hand.
"""
import importlib.metadata
import os.path as osp
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT

LINTED = ['mmclip', 'tools', 'tests', 'configs', 'setup.py']
LINTERS = ('flake8', 'isort')


def pinned_versions(path: str) -> dict:
    """``{name: version}`` of the ``name==version`` lines in ``path``."""
    pins = {}
    with open(osp.join(REPO_ROOT, path)) as f:
        for line in f:
            name, sep, version = line.split('#')[0].strip().partition('==')
            if sep:
                pins[name] = version
    return pins


def run_linter(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('linter', LINTERS)
def test_installed_linter_is_the_pinned_one(linter):
    """The suite, ``make test`` and pre-commit run the same linter release
    (a newer one may add checks)."""
    with open(osp.join(REPO_ROOT, '.pre-commit-config.yaml')) as f:
        config = yaml.safe_load(f)
    hooks = {hook['id']: hook for repo in config['repos']
             for hook in repo['hooks']}
    pin = pinned_versions('requirements/tests.txt')[linter]
    assert hooks[linter]['additional_dependencies'] == [f'{linter}=={pin}']
    try:
        installed = importlib.metadata.version(linter)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f'{linter} is not installed: pip install -r '
                    'requirements/tests.txt (make test does)')
    assert installed == pin, (
        f'{linter} {installed} is installed, requirements/tests.txt pins '
        f'{pin}: pip install {linter}=={pin}')


def test_flake8_clean():
    result = run_linter('flake8', *LINTED)
    assert result.returncode == 0, (
        f'flake8 found problems:\n{result.stdout}{result.stderr}')


def test_isort_clean():
    result = run_linter('isort', '--check-only', '--diff', *LINTED)
    assert result.returncode == 0, (
        'isort would reorder imports (fix: isort mmclip tools tests configs '
        f'setup.py):\n{result.stdout}{result.stderr}')
