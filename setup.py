"""Install mmclip: ``pip install -e .`` (``.[tests]`` for the test suite).

``install_requires`` are the ranges of ``requirements/runtime.txt`` and
``mminstall.txt``, so an existing torch / mmengine / mmpretrain in range is
kept; ``requirements/constraints.txt`` pins the releases ``make`` installs.
"""
import os.path as osp
import shutil
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# Shipped inside the package as mmclip/.mim/, where mmclip.apis.find_config
# and the model index look first, and where `mim train/test mmclip CONFIG`
# finds tools/train.py and tools/test.py (OpenMIM's layout, as mmpretrain's).
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_requirements(name):
    """Requirement lines of ``requirements/{name}.txt`` (comments dropped)."""
    path = osp.join(osp.dirname(__file__), 'requirements', f'{name}.txt')
    with open(path) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def get_version():
    scope = {}
    with open(osp.join('mmclip', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


# Accept full mmcv instead of mmcv-lite: only require mmcv-lite when no mmcv
# distribution is installed already.
def mmcv_requirement():
    try:
        from importlib.metadata import version
        version('mmcv')
        return []
    except Exception:
        return read_requirements('mminstall')


class BuildWithMim(build_py):
    """``build_py`` that also copies :data:`MIM_FILES` into
    ``mmclip/.mim`` of the built package (wheels, ``pip install .``).

    Editable installs skip the copy: mmclip then reads the configs and
    ``model-index.yml`` from the source tree, so edits show up at once.
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        here = osp.dirname(osp.abspath(__file__))
        mim = osp.join(self.build_lib, 'mmclip', '.mim')
        for name in MIM_FILES:
            src, dst = osp.join(here, name), osp.join(mim, name)
            if osp.isdir(dst):
                shutil.rmtree(dst)
            self.mkpath(osp.dirname(dst))
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                    '__pycache__', '*.pyc'))
            else:
                shutil.copyfile(src, dst)


setup(
    name='mmclip',
    version=get_version(),
    description='CLIP for the OpenMMLab ecosystem: pretraining, zero-shot, '
    'fine-tuning and inference on mmengine/mmpretrain',
    long_description=open('README.md').read() if osp.exists('README.md')
    else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,
    package_data={'mmclip': ['models/tokenizers/*.txt.gz',
                             'search/page.html']},
    cmdclass={'build_py': BuildWithMim},
    python_requires='>=3.9',
    install_requires=read_requirements('runtime') + mmcv_requirement(),
    extras_require={
        'tests': read_requirements('tests'),
        'optional': read_requirements('optional'),
        'deploy': read_requirements('deploy'),
        'search': read_requirements('search'),
    },
    license='Apache License 2.0',
    zip_safe=False)
