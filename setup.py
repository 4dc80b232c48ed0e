"""Install mmclip: ``pip install -e .`` (``.[tests]`` for the test suite)."""
import os.path as osp

from setuptools import find_packages, setup


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
    package_data={'mmclip': ['models/tokenizers/*.txt.gz', '.mim/**/*']},
    python_requires='>=3.9',
    install_requires=read_requirements('runtime') + mmcv_requirement(),
    extras_require={
        'tests': read_requirements('tests'),
        'optional': read_requirements('optional'),
    },
    license='Apache License 2.0',
    zip_safe=False)
