"""Launching ``tools/train.py`` / ``tools/test.py``: every command of
``docs/training.md`` parses (the shell scripts run with stand-ins for
``python`` and ``srun`` that record what they were given; ``mim`` builds
its commands as OpenMIM 0.3.9 does); ``--auto-scale-lr``; the process group
and DDP wrapper for CPU runs; user errors as one ``error:`` line while bugs
keep their traceback."""
import os
import os.path as osp
import re
import shlex
import socket
import subprocess
from contextlib import contextmanager

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from conftest import REPO_ROOT, load_tool, markdown_blocks
from tiny_digits import TRAIN_CONFIG, digits_train_config, write_tiny_digits

GUIDE = osp.join(REPO_ROOT, 'docs', 'training.md')
TEST_CONFIG = osp.join(REPO_ROOT, 'configs', 'clip',
                       'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')
# Writes its arguments, one per line, to $RECORD (stands in for python/srun).
RECORDER = '#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\n'


@pytest.fixture
def train_tool(monkeypatch):
    # parse_args sets LOCAL_RANK for mmengine; keep it out of this process.
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    return load_tool('train.py')


@pytest.fixture
def test_tool(monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    return load_tool('test.py')


# ---------------------------------------------------------------- the guide
def guide_commands():
    """Command lines of the guide's ``bash`` blocks, comments left out."""
    return [line for block in markdown_blocks(GUIDE, 'bash')
            for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


class CommandChecker:
    """Parses a guide command the way the programs it starts would, down to
    ``tools/train.py`` / ``tools/test.py``'s own parsers; records which kinds
    of command it saw."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.seen = set()
        bin_dir = tmp_path / 'bin'
        bin_dir.mkdir()
        for name in ('python', 'srun'):
            (bin_dir / name).write_text(RECORDER)
            (bin_dir / name).chmod(0o755)
        self.bin = str(bin_dir)

    def check(self, line: str) -> None:
        words = shlex.split(line)
        env = {}
        while re.match(r'^[A-Z_]+=', words[0]):
            key, value = words.pop(0).split('=', 1)
            env[key] = value
        program, args = words[0], words[1:]
        if program == 'python':
            self.script(args[0], args[1:])
        elif program == 'torchrun':
            self.torchrun(args)
            self.seen.add('torchrun')
        elif program.endswith('.sh'):
            self.shell_script(program, args, env)
        elif program == 'mim':
            self.mim(args)
        else:
            raise AssertionError(f'no checker for {line!r}')

    def script(self, script: str, args: list):
        """``tools/{train,test}.py`` parse ``args`` (their launcher is
        recorded, configs named by path exist); any other tool of the guide
        (the data tool, a benchmark) parses them with its own parser."""
        name = osp.relpath(osp.join(REPO_ROOT, script), REPO_ROOT)
        if name not in ('tools/train.py', 'tools/test.py'):
            assert name.startswith('tools/'), script
            load_tool(osp.relpath(name, 'tools')).parse_args(args)
            return None
        tool = load_tool(osp.basename(name))
        parsed = tool.parse_args(args)
        self.seen.add(f'{osp.basename(name)} --launcher {parsed.launcher}')
        if parsed.config.startswith('configs/'):
            assert osp.isfile(osp.join(REPO_ROOT, parsed.config)), \
                f'docs/training.md names a missing {parsed.config}'
        if getattr(parsed, 'auto_scale_lr', False):
            self.seen.add('--auto-scale-lr')
        return parsed

    def torchrun(self, args: list):
        from torch.distributed.run import get_args_parser
        parsed = get_args_parser().parse_args(args)
        self.script(parsed.training_script, parsed.training_script_args)
        return parsed

    def shell_script(self, script: str, args: list, env: dict):
        """Run the script with recording stand-ins for python and srun."""
        record = str(self.tmp / 'record.txt')
        run_env = dict(os.environ, **env, RECORD=record,
                       PATH=self.bin + os.pathsep + os.environ['PATH'])
        run_env.pop('PYTHON', None)
        subprocess.run(['bash', osp.join(REPO_ROOT, script), *args],
                       env=run_env, check=True, timeout=60)
        with open(record) as f:
            argv = f.read().splitlines()
        name = osp.basename(script)
        self.seen.add(name)
        if name.startswith('dist_'):
            assert argv[:2] == ['-m', 'torch.distributed.run'], argv
            parsed = self.torchrun(argv[2:])
            assert parsed.nnodes == env.get('NNODES', '1')
            assert parsed.node_rank == int(env.get('NODE_RANK', 0))
            assert parsed.master_addr == env.get('MASTER_ADDR', '127.0.0.1')
            assert parsed.master_port == int(env.get('PORT', 29500))
            if parsed.nnodes == '2':
                self.seen.add(f'two nodes, node {parsed.node_rank}')
            return
        # srun OPTIONS python -u tools/{train,test}.py ...
        python = argv.index('python')
        srun = argv[:python]
        assert srun[:2] == ['-p', args[0]] and f'--job-name={args[1]}' in srun
        assert f'--ntasks={env.get("GPUS", 8)}' in srun
        assert f'--ntasks-per-node={env.get("GPUS_PER_NODE", 8)}' in srun
        assert argv[python + 1] == '-u'
        parsed = self.script(argv[python + 2], argv[python + 3:])
        assert parsed.launcher == 'slurm'

    def mim(self, args: list):
        """OpenMIM 0.3.9's ``mim train/test PACKAGE CONFIG``: its own options
        are taken out, the config is found by file name in
        ``mmclip/.mim/configs``, and the script gets the rest, plus
        ``--launcher`` (and, through ``torch.distributed.launch``,
        ``--local-rank``)."""
        command, package, config, rest = args[0], args[1], args[2], args[3:]
        assert command in ('train', 'test') and package == 'mmclip'
        mim_options = {'--gpus': 1, '-G': 1, '--launcher': 1, '-l': 1,
                       '--port': 1, '--gpus-per-node': 1, '-g': 1,
                       '--cpus-per-task': 1, '-c': 1, '--partition': 1,
                       '-p': 1, '--srun-args': 1, '--checkpoint': 1,
                       '-C': 1, '-y': 0, '--yes': 0}
        taken, other = {}, []
        i = 0
        while i < len(rest):
            if rest[i] in mim_options:
                n = mim_options[rest[i]]
                taken[rest[i]] = rest[i + 1] if n else True
                i += 1 + n
            else:
                other.append(rest[i])
                i += 1
        found = [osp.join(root, config) for root, _, files in os.walk(
            osp.join(REPO_ROOT, 'configs')) if config in files]
        assert len(found) == 1, config
        launcher = taken.get('--launcher', 'none')
        script_args = [found[0]]
        if command == 'test':
            script_args.append(taken['--checkpoint'])
        script_args += ['--launcher', launcher] + other
        if launcher == 'pytorch':
            script_args.append('--local-rank=0')
        self.script(f'tools/{command}.py', script_args)
        self.seen.add(f'mim {command} --launcher {launcher}')


def test_every_guide_command_parses(tmp_path, monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    checker = CommandChecker(tmp_path)
    for line in guide_commands():
        checker.check(line)
    assert checker.seen >= {
        'train.py --launcher none', 'train.py --launcher pytorch',
        'train.py --launcher slurm', 'test.py --launcher none',
        'test.py --launcher pytorch', 'test.py --launcher slurm',
        'dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh',
        'torchrun', 'two nodes, node 0', 'two nodes, node 1',
        'mim train --launcher none', 'mim train --launcher pytorch',
        'mim test --launcher none', '--auto-scale-lr'
    }, checker.seen


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh',
                                    'slurm_train.sh', 'slurm_test.sh'])
def test_scripts_print_usage_without_arguments(script):
    proc = subprocess.run(['bash', osp.join(REPO_ROOT, 'tools', script)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith('usage: ')


def test_help_answers_without_loading_torch():
    """--help (which mim train runs before training) parses before the
    heavy imports."""
    for tool in ('train.py', 'test.py'):
        code = (f'import runpy, sys; sys.argv = ["{tool}", "--help"]\n'
                'try:\n'
                f'    runpy.run_path("{REPO_ROOT}/tools/{tool}", '
                'run_name="__main__")\n'
                'except SystemExit:\n'
                '    pass\n'
                'assert "torch" not in sys.modules, "torch was imported"\n')
        proc = subprocess.run([os.sys.executable, '-c', code],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert '--launcher' in proc.stdout


# ------------------------------------------------------------ auto-scale-lr
def test_every_training_config_states_its_base_batch_size():
    """``auto_scale_lr.base_batch_size`` is the ``{N}xb{B}`` of a training
    config's name (N processes x B per process; OpenMMLab names training
    configs so), the global batch its learning rate was set for. With
    ``-accum{K}`` and exact contrastive accumulation (``model.accum_steps``)
    a process loads K micro-batches of B at once, and the batch of the
    loss, which ``--auto-scale-lr`` counts, is N x K x B; with mmengine's
    ``accumulative_counts`` it loads B and counts N x B."""
    checked = 0
    for root, _, files in os.walk(osp.join(REPO_ROOT, 'configs')):
        if '_base_' in root:
            continue
        for name in sorted(files):
            match = re.search(r'_(\d+)xb(\d+)', name)
            if not name.endswith('.py') or not match:
                continue
            cfg = Config.fromfile(osp.join(root, name))
            procs, per_proc = map(int, match.groups())
            accum = re.search(r'-accum(\d+)', name)
            if accum and cfg.model.get('accum_steps', 1) > 1:
                assert cfg.model.accum_steps == int(accum.group(1)), name
                per_proc *= cfg.model.accum_steps
            assert cfg.train_dataloader.batch_size == per_proc, name
            base = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
            assert base == procs * per_proc, (
                f'{name}: auto_scale_lr.base_batch_size is {base}, its name '
                f'says {procs} x {per_proc}')
            checked += 1
    assert checked >= 5


def test_auto_scale_lr_flag_enables_scaling():
    from mmclip.apis import prepare_train_config
    assert not prepare_train_config(TRAIN_CONFIG).auto_scale_lr.enable
    cfg = prepare_train_config(TRAIN_CONFIG, auto_scale_lr=True)
    assert cfg.auto_scale_lr == dict(base_batch_size=32, enable=True)


def test_auto_scale_lr_without_base_batch_size(tmp_path, train_tool, capsys):
    config = tmp_path / 'no_base.py'
    config.write_text(f'_base_ = [{TRAIN_CONFIG!r}]\n'
                      'auto_scale_lr = dict(_delete_=True, enable=False)\n')
    assert train_tool.main([str(config), '--auto-scale-lr']) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: --auto-scale-lr')
    assert 'base_batch_size' in err


def test_auto_scale_lr_scales_the_learning_rate(tmp_path, monkeypatch):
    """One process x 16 against the digits config's base batch of 32: the
    learning rate halves (and only with the flag)."""
    from mmclip.apis import prepare_train_config, train
    root = write_tiny_digits(str(tmp_path / 'digits'), 16, 0)
    monkeypatch.syspath_prepend(osp.dirname(osp.abspath(__file__)))
    config = digits_train_config(tmp_path, root, 16, max_epochs=1)
    base_lr = Config.fromfile(config).optim_wrapper.optimizer.lr
    runner = train(prepare_train_config(
        config, work_dir=str(tmp_path / 'scaled'), auto_scale_lr=True))
    # The learning rate of the first (and only) iteration, as logged.
    logged = runner.message_hub.get_scalar('train/lr').data[0]
    assert logged == [pytest.approx(base_lr * 16 / 32)]


# ------------------------------------------- process group and DDP on CPU
def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextmanager
def torchrun_env(monkeypatch):
    """This process as rank 0 of 1, as torchrun would start it; the group
    is destroyed afterwards."""
    for key, value in dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
                           MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
    try:
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_cpu_processes_get_gloo_and_a_cpu_ddp_wrapper(monkeypatch):
    from mmengine.registry import MODEL_WRAPPERS

    from mmclip.apis.launch import setup_distributed
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(launcher='pytorch', find_unused_parameters=True,
                      env_cfg=dict(dist_cfg=dict(backend='nccl',
                                                 timeout=60))))
    with torchrun_env(monkeypatch):
        setup_distributed(cfg)
        assert dist.get_backend() == 'gloo'
        assert dist.get_world_size() == 1
        # As Runner.wrap_model builds it: mmengine's default_args give a
        # CUDA device, the config's device_ids=None wins.
        model = MODEL_WRAPPERS.build(
            cfg.model_wrapper_cfg,
            default_args=dict(module=torch.nn.Linear(2, 2), device_ids=[0]))
        assert model.device_ids is None
        assert model.find_unused_parameters
        model(torch.ones(1, 2)).sum().backward()
        setup_distributed(cfg)  # a second call keeps the group
        assert dist.is_initialized()


def test_cpu_ddp_wrapper_keeps_the_configs_settings(monkeypatch):
    from mmclip.apis.launch import setup_distributed
    from mmclip.apis.preflight import ConfigError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with torchrun_env(monkeypatch):
        cfg = Config(dict(launcher='pytorch', model_wrapper_cfg=dict(
            type='MMDistributedDataParallel', broadcast_buffers=True)))
        setup_distributed(cfg)
        assert cfg.model_wrapper_cfg == dict(
            type='MMDistributedDataParallel', broadcast_buffers=True,
            device_ids=None)
        cfg = Config(dict(launcher='pytorch', model_wrapper_cfg=dict(
            type='MMFullyShardedDataParallel')))
        with pytest.raises(ConfigError, match='needs CUDA GPUs'):
            setup_distributed(cfg)


def test_with_cuda_mmengine_starts_the_group(monkeypatch):
    from mmclip.apis.launch import setup_distributed
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    with torchrun_env(monkeypatch):
        cfg = Config(dict(launcher='pytorch'))
        setup_distributed(cfg)
        assert not dist.is_initialized()
        assert 'model_wrapper_cfg' not in cfg


@pytest.mark.parametrize('launcher,env,match', [
    ('pytorch', {}, 'RANK, WORLD_SIZE.*tools/dist_train.sh'),
    ('slurm', {}, 'SLURM_PROCID.*tools/slurm_train.sh'),
    ('slurm', dict(SLURM_PROCID='0', SLURM_NTASKS='1',
                   SLURM_NODELIST='node1'), 'needs CUDA GPUs.*torchrun'),
])
def test_launcher_errors(monkeypatch, launcher, env, match):
    from mmclip.apis.launch import SLURM_ENV, TORCHRUN_ENV, setup_distributed
    from mmclip.apis.preflight import ConfigError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for key in TORCHRUN_ENV + SLURM_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=match):
        setup_distributed(Config(dict(launcher=launcher)))


# ------------------------------------------------------------- user errors
def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.count('\n') == 1, captured.err
    assert captured.err.startswith('error: ')
    return captured.err


def test_train_before_preparing_the_data(tmp_path, monkeypatch, train_tool,
                                         capsys):
    monkeypatch.chdir(tmp_path)  # no data/digits here
    assert train_tool.main([TRAIN_CONFIG]) == 1
    err = one_error_line(capsys)
    assert 'data/digits/train.csv does not exist' in err
    assert '`python tools/dataset_converters/prepare_digits.py data/digits`' \
        in err
    assert 'train_dataloader.dataset.data_root=' in err


def test_the_missing_data_names_its_own_preparation(tmp_path,
                                                    monkeypatch):
    # The shapes caption fine-tune reads the shapes and replays digits: its
    # comments (and its bases') hold both preparation commands, the digits'
    # first.
    from mmclip.apis.preflight import MissingFileError, check_data_files
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'clip',
        'clip_vit-tiny-p8_caption-ft-1xb32-5e_shapes-32px.py'))
    with pytest.raises(MissingFileError) as missing:
        check_data_files(cfg, ['train_dataloader'])
    assert str(missing.value).startswith(
        'data/shapes/train.csv does not exist')
    assert ('`python tools/dataset_converters/prepare_shapes.py '
            'data/shapes`') in str(missing.value)
    (tmp_path / 'data' / 'shapes').mkdir(parents=True)
    (tmp_path / 'data' / 'shapes' / 'train.csv').write_text(
        'filepath,title\na.png,a red ring\n')
    with pytest.raises(MissingFileError, match=r'^data/digits/train\.csv '
                       r'.*`python tools/dataset_converters/prepare_digits'
                       r'\.py data/digits`'):
        check_data_files(cfg, ['train_dataloader'])


def test_test_before_preparing_the_data(tmp_path, monkeypatch, test_tool,
                                        capsys):
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / 'epoch_1.pth'
    checkpoint.write_bytes(b'')  # never read: the data check comes first
    assert test_tool.main([TEST_CONFIG, str(checkpoint)]) == 1
    err = one_error_line(capsys)
    assert 'data/digits/val.csv does not exist' in err
    assert 'prepare_digits.py data/digits' in err


def test_class_names_file_is_checked(tmp_path, monkeypatch, test_tool,
                                     capsys):
    root = write_tiny_digits(str(tmp_path / 'digits'), 0, 4)
    os.remove(osp.join(root, 'classnames.txt'))
    checkpoint = tmp_path / 'epoch_1.pth'
    checkpoint.write_bytes(b'')
    assert test_tool.main([
        TEST_CONFIG, str(checkpoint), '--cfg-options',
        f'test_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.classes={root}/classnames.txt'
    ]) == 1
    assert 'classnames.txt does not exist' in one_error_line(capsys)


@pytest.mark.parametrize('argv,match', [
    (['configs/clip/clip_vit-tiny-p8_1xb32-24e_digit-32px.py'],
     r'does not exist\. Did you mean .*clip_vit-tiny-p8_1xb32-24e_digits-'
     r'32px\.py'),
    ([TRAIN_CONFIG, '--resume', 'no/such/epoch_3.pth'],
     "Cannot resume from 'no/such/epoch_3.pth': no such checkpoint"),
    ([TRAIN_CONFIG, '--launcher', 'pytorch'],
     'not set: start the processes with tools/dist_train.sh'),
])
def test_train_user_errors(tmp_path, monkeypatch, train_tool, capsys, argv,
                           match):
    from mmclip.apis.launch import TORCHRUN_ENV
    for key in TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    root = write_tiny_digits(str(tmp_path / 'digits'), 1, 0)
    monkeypatch.chdir(REPO_ROOT)  # the config typo is relative to the repo
    argv = argv + ['--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                   f'train_dataloader.dataset.data_root={root}']
    assert train_tool.main(argv) == 1
    assert re.search(match, one_error_line(capsys))


@pytest.mark.parametrize('argv,match', [
    ([TEST_CONFIG, 'no/such.pth'], 'clip_to_mmclip.py'),
    ([TRAIN_CONFIG, 'CKPT'], 'has no `test_dataloader`; use a zero-shot'),
])
def test_test_user_errors(tmp_path, test_tool, capsys, argv, match):
    checkpoint = tmp_path / 'epoch_1.pth'
    checkpoint.write_bytes(b'')
    argv = [str(checkpoint) if a == 'CKPT' else a for a in argv]
    assert test_tool.main(argv) == 1
    assert re.search(match, one_error_line(capsys))


def test_data_without_a_preparation_command(tmp_path, monkeypatch,
                                            train_tool, capsys):
    monkeypatch.chdir(tmp_path)
    config = osp.join(REPO_ROOT, 'configs', 'clip',
                      'clip_vit-base-p32_8xb512-amp-32e_cc3m.py')
    assert train_tool.main([config]) == 1
    err = one_error_line(capsys)
    assert err.startswith('error: data/cc3m does not exist')
    assert 'as the comments of' in err
    assert '--cfg-options train_dataloader.dataset.shards=' in err


def test_data_check_reads_wrapped_remote_and_downloading_datasets(
        tmp_path):
    from mmclip.apis.preflight import MissingFileError, check_data_files
    ann = tmp_path / 'train.csv'
    # One record: a caption file without any is refused on its own.
    ann.write_text('filepath,title\na.png,a photo\n')

    def check(dataset):
        check_data_files(Config(dict(train_dataloader=dict(dataset=dataset))),
                         ['train_dataloader'])

    check(dict(type='ImageTextDataset', ann_file=str(ann)))
    check(dict(type='ImageTextDataset', data_root=str(tmp_path),
               ann_file='train.csv'))
    check(dict(type='WebDatasetShards', shards='s3://bucket/{0..9}.tar'))
    # mmpretrain's CIFAR fetches its files (download=True by default) ...
    check(dict(type='CIFAR100', data_root=str(tmp_path / 'none')))
    # ... unless told not to.
    with pytest.raises(MissingFileError, match='dataset.data_root=...'):
        check(dict(type='CIFAR100', data_root=str(tmp_path / 'none'),
                   download=False))
    with pytest.raises(MissingFileError,
                       match=r'dataset\.datasets\.1\.data_root=\.\.\.'):
        check(dict(type='ConcatDataset', datasets=[
            dict(type='ImageTextDataset', ann_file=str(ann)),
            dict(type='ImageTextDataset', data_root=str(tmp_path),
                 ann_file='missing.csv')]))
    with pytest.raises(MissingFileError, match=r'dataset\.dataset\.shards'):
        check(dict(type='RepeatDataset', times=2, dataset=dict(
            type='WebDatasetShards',
            shards=str(tmp_path / 'x' / '{0..9}.tar'))))


def test_demo_with_a_missing_checkpoint(tmp_path, capsys):
    demo = load_tool('demo.py')
    missing = str(tmp_path / 'converted.pth')
    assert demo.main(['--checkpoint', missing, '--skip-digits']) == 1
    assert 'clip_to_mmclip.py' in one_error_line(capsys)


@pytest.mark.parametrize('error', [RuntimeError('a bug'), KeyError('bug'),
                                   ValueError('a bug'),
                                   FileNotFoundError('a bug')])
def test_bugs_keep_their_traceback(monkeypatch, train_tool, test_tool, error):
    """Only mmclip's deliberate user errors become one line; anything else
    raised while running propagates."""
    import importlib

    def broken(*args, **kwargs):
        raise error

    # The modules (mmclip.apis.train the attribute is the function).
    for name in ('train', 'test'):
        monkeypatch.setattr(
            importlib.import_module(f'mmclip.apis.{name}'), name, broken)
    with pytest.raises(type(error)):
        train_tool.main([TRAIN_CONFIG])
    with pytest.raises(type(error)):
        test_tool.main([TEST_CONFIG, TRAIN_CONFIG])
