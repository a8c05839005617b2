"""The shared CLI wrapper: user errors, values absl cannot read and leftover words are one line and exit code 2,
other exit codes pass through."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from xml.dom import minidom

import pytest
from absl import flags

from dcgan_tf.cli import check_words, define_auto_boolean, define_flags, exit_with, parse_flags
from dcgan_tf.config import setting
from dcgan_tf.errors import DcganError, FlagError

ROOT = Path(__file__).resolve().parent.parent


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


# --------------------------------------------------------------------------------------------------------------
# Values absl cannot read: one line naming the flag, exit code 2


@dataclasses.dataclass(frozen=True)
class _Settings:
    loss: str = setting("gan", "Loss.", choices=("gan", "hinge"))
    option: int = setting(0, "Option.", choices=(0, 1, 2))
    epoch: int = setting(25, "Epochs.")


@pytest.mark.parametrize("command_line,message", [
    (["--loss", "foo"], "--loss: must be one of gan, hinge, got 'foo'"),
    (["--option=7"], "--option: must be one of 0, 1, 2, got '7'"),
    (["--epoch=x"], "--epoch: invalid literal for int() with base 10: 'x'"),
    (["--nonsense"], "Unknown command line flag 'nonsense'"),
])
def test_a_value_absl_cannot_read_is_one_line_naming_the_flag_and_exit_2(capsys, command_line, message):
    values = flags.FlagValues()
    define_flags(_Settings, flag_values=values)
    with pytest.raises(SystemExit) as e:
        parse_flags(["prog", *command_line], values)
    assert (e.value.code, capsys.readouterr().err) == (2, f"error: {message}\n")


def test_an_enum_of_whole_numbers_keeps_int_values_and_shows_its_choices():
    values = flags.FlagValues()
    define_flags(_Settings, flag_values=values)
    assert parse_flags(["prog", "--option", "2", "word"], values) == ["prog", "word"]
    assert values.option == 2 and values["option"].default == 0
    assert values["option"].help.startswith("<0|1|2>: ") and values["loss"].help.startswith("<gan|hinge>: ")
    xml = values["option"]._create_xml_dom_element(minidom.Document(), "prog").toxml()  # what --helpxml writes
    assert "<enum_value>2</enum_value>" in xml


# --------------------------------------------------------------------------------------------------------------
# Leftover words: absl's booleans take no separate value, so `--train False` would leave `False` over


@pytest.fixture
def fv():
    """Flags like the programs': a boolean, an auto boolean and a string."""
    values = flags.FlagValues()
    flags.DEFINE_boolean("train", False, "Train.", flag_values=values)
    define_auto_boolean("jit_compile", None, "XLA.", flag_values=values, module_name="test")
    flags.DEFINE_string("dataset", "faces", "Data.", flag_values=values)
    return values


def word_error(fv, *command_line: str, takes_words: bool = False) -> str | None:
    """check_words' message for `prog *command_line` (absl's parse of it gives the leftover words), or None."""
    argv = fv(["prog", *command_line])
    try:
        check_words(argv, takes_words=takes_words, command_line=["prog", *command_line], flag_values=fv)
    except DcganError as e:
        return str(e)
    return None


def test_a_boolean_value_after_a_boolean_flag_names_the_spelling(fv):
    message = "unexpected word {!r} after {}: a boolean flag takes no separate value; write {}"
    assert word_error(fv, "--train", "False") == message.format("False", "--train", "--notrain or --train=false")
    assert word_error(fv, "--train", "yes") == message.format("yes", "--train", "--train or --train=true")
    assert word_error(fv, "--notrain", "1") == message.format("1", "--notrain",
                                                             "--train or --notrain (or --train=true|false)")
    assert word_error(fv, "--jit_compile", "auto") == message.format("auto", "--jit_compile", "--jit_compile=auto")
    # Also where the program takes words: `False` is not an image path.
    assert word_error(fv, "a.png", "--train", "False", takes_words=True) == message.format(
        "False", "--train", "--notrain or --train=false")


def test_any_leftover_word_is_an_error_unless_the_program_takes_words(fv):
    message = ("unexpected word 'x.png': this program takes flags only (--help lists them); a flag's value goes "
               "after = or as the next word")
    assert word_error(fv, "--dataset", "celebA", "x.png") == message
    assert word_error(fv, "--train=false", "x.png") == message
    assert word_error(fv, "--train", "--", "x.png") == message
    assert word_error(fv, "--dataset", "False", "--train") is None  # a string flag's value
    assert word_error(fv, "--train", "--dataset=x") is None


def test_words_stay_paths_where_the_program_takes_them(fv):
    assert word_error(fv, "a.png", "--train", "b.png", "--dataset", "True", "c.png", takes_words=True) is None
    assert word_error(fv, "--train", "--", "False", takes_words=True) is None  # after --, a word is a word


PROGRAMS = {  # each program with its flags right, plus one leftover word: it stops before any heavy work
    "main.py": ([str(ROOT / "main.py"), "--dataset=tiny", "--train", "False"],
                "unexpected word 'False' after --train: a boolean flag takes no separate value; "
                "write --notrain or --train=false"),
    "complete.py": ([str(ROOT / "complete.py"), "a.png", "--overwrite", "false"],
                    "unexpected word 'false' after --overwrite: a boolean flag takes no separate value; "
                    "write --nooverwrite or --overwrite=false"),
    "prepare": (["-m", "dcgan_tf.prepare", "--input=raw", "--output=out", "--grayscale", "no"],
                "unexpected word 'no' after --grayscale: a boolean flag takes no separate value; "
                "write --nograyscale or --grayscale=false"),
    "classifier": (["-m", "dcgan_tf.classifier", "--epochs=1", "extra"],
                   "unexpected word 'extra': this program takes flags only (--help lists them); a flag's value "
                   "goes after = or as the next word"),
}


@pytest.mark.parametrize("program", [pytest.param(p, marks=pytest.mark.slow) if p == "classifier" else p
                                     for p in PROGRAMS])  # the classifier imports TensorFlow first: seconds
def test_every_program_stops_at_a_leftover_word(program, tmp_path):
    args, message = PROGRAMS[program]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the quiet start, as a user has it
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, f"error: {message}\n")
    assert proc.stdout == "" and not list(tmp_path.iterdir())  # nothing done
