"""tools/dataset_converters/prepare_digits.py: the command line of
:func:`mmclip.datasets.digits.prepare_digits` (tested in
tests/test_datasets/test_digits.py)."""
import csv
import os.path as osp

from conftest import load_tool

tool = load_tool('dataset_converters/prepare_digits.py')


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_cli(tmp_path, capsys):
    out = str(tmp_path / 'd')
    argv = [out, '--size', '8', '--val-fraction', '0.5', '--seed', '1',
            '--resample', 'nearest']
    assert tool.main(argv) == 0
    assert tool.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'written' in lines[0] and 'already up to date' in lines[1]
    assert 890 <= len(read_csv(osp.join(out, 'val.csv'))) <= 905  # per class


def test_a_bad_fraction_is_one_error_line(tmp_path, capsys):
    assert tool.main([str(tmp_path), '--val-fraction', '1.5']) == 1
    err = capsys.readouterr().err
    assert err == 'error: val_fraction must be in (0, 1), got 1.5.\n'
