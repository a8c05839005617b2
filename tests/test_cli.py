"""The shared CLI wrapper: user errors are one line and exit code 2, other exit codes pass through."""

import pytest

from dcgan_tf.cli import exit_with
from dcgan_tf.errors import FlagError


def test_user_error_is_one_line_and_exit_2(capsys):
    def run(argv):
        raise FlagError("batch_size", "must be a whole number >= 1, got 0")

    with pytest.raises(SystemExit) as e:
        exit_with(run, ["prog"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: --batch_size: must be a whole number >= 1, got 0\n"


def test_exit_code_passes_through():
    with pytest.raises(SystemExit) as e:
        exit_with(lambda argv: 130, ["prog"])
    assert e.value.code == 130
