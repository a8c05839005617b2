"""What every command-line program shares: flags made from the config dataclasses, and one-line user errors.

Every setting is declared once, as a dataclass field made with `config.setting` (default, help text, enum
choices); `define_flags` turns the fields into absl flags of the same names and `flag_values` reads them back,
so the flags, the configs and flags.md (checked by tests/test_flags_doc.py) cannot drift apart. The programs
are main.py, complete.py, `python -m dcgan_tf.classifier` and `python -m dcgan_tf.prepare`.

A user error is one line on stderr and exit code 2: a value absl cannot read (`--loss foo`, `--epoch x`) when
`parse_flags` parses the command line; a value the config's `validate` refuses, or a word left over after the
flags (`check_words`: `main.py --train False` stops and says to write `--notrain` or `--train=false`, instead
of training), when `exit_with` runs the program's work.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from absl import app, flags
from absl import logging as absl_logging

from dcgan_tf import quiet
from dcgan_tf.errors import DcganError, FlagError, check_choice


class AutoBooleanParser(flags.BooleanParser):
    """A boolean flag's parser that also takes `auto` (None: the program decides from the machine), so a `bool |
    None` setting reads `--flag`, `--noflag`, `--flag=true|false|auto`."""

    def parse(self, argument):
        if isinstance(argument, str) and argument.lower() == "auto":
            return None
        return super().parse(argument)


def define_auto_boolean(name: str, default: bool | None, help_text: str, *, flag_values: flags.FlagValues,
                        module_name: str) -> None:
    """An absl boolean flag whose value may also be `auto` (None)."""
    flag = flags.Flag(AutoBooleanParser(), flags.ArgumentSerializer(), name, default, help_text, boolean=True)
    flags.DEFINE_flag(flag, flag_values, module_name=module_name)


class IntEnumParser(flags.EnumParser):
    """An enum flag of whole numbers (`--option 0..5`): absl's enum parser, whose value is the int."""

    def parse(self, argument):
        return int(super().parse(str(argument)))


class IntEnumFlag(flags.Flag):
    """An absl flag of `IntEnumParser`, shown as absl shows an enum flag: `<0|1|2>: help` and, in --helpxml,
    an enum_value per choice."""

    def __init__(self, name: str, default: int, help_text: str, choices: Iterable[int]):
        words = [str(c) for c in choices]
        super().__init__(IntEnumParser(words), flags.ArgumentSerializer(), name, default,
                         f"<{'|'.join(words)}>: {help_text}")

    _extra_xml_dom_elements = flags.EnumFlag._extra_xml_dom_elements


def define_enum(name: str, default: Any, choices: Iterable[Any], help_text: str, *, flag_values: flags.FlagValues,
                module_name: str) -> None:
    """An absl enum flag of `choices`: strings, or ints whose value stays an int. --help shows the choices."""
    if all(isinstance(c, int) for c in choices):
        flags.DEFINE_flag(IntEnumFlag(name, default, help_text, choices), flag_values, module_name=module_name)
    else:
        flags.DEFINE_enum(name, default, [str(c) for c in choices], help_text, flag_values=flag_values,
                          module_name=module_name)


_DEFINE = {"bool": flags.DEFINE_boolean, "int": flags.DEFINE_integer, "float": flags.DEFINE_float,
           "str": flags.DEFINE_string}


def define_flags(config_cls: type, *, exclude: Iterable[str] = (), flag_values: flags.FlagValues = flags.FLAGS
                 ) -> None:
    """Defines an absl flag for every field of the dataclass `config_cls` made with `config.setting`.

    The flag's type comes from the field's annotation (bool, int, float, str, each optionally `| None`), an
    enum flag from the field's choices (`define_enum`); a `bool | None` field takes `auto` for None. The flags
    belong to the calling module, so a program's `--help` lists them as its own.
    """
    caller = sys._getframe(1).f_globals.get("__name__", "")
    module_name = sys.argv[0] if caller == "__main__" else caller  # absl's name for the main module
    for field in dataclasses.fields(config_cls):
        if field.name in exclude:
            continue
        help_text, choices = field.metadata.get("help"), field.metadata.get("choices")
        kind = str(field.type).removesuffix(" | None")
        if help_text is None or kind not in _DEFINE:
            raise TypeError(f"{config_cls.__name__}.{field.name}: not a setting() of bool, int, float or str")
        if str(field.type) == "bool | None":  # None is `auto`
            define_auto_boolean(field.name, field.default, help_text, flag_values=flag_values, module_name=module_name)
        elif choices is not None:
            define_enum(field.name, field.default, choices, help_text, flag_values=flag_values,
                        module_name=module_name)
        else:
            _DEFINE[kind](field.name, field.default, help_text, flag_values=flag_values, module_name=module_name)


def flag_values(config_cls: type, *, exclude: Iterable[str] = (), flag_values: flags.FlagValues = flags.FLAGS
                ) -> tuple[dict[str, Any], set[str]]:
    """The values of `config_cls`'s flags by field name, and the names of those given on the command line."""
    names = [f.name for f in dataclasses.fields(config_cls) if f.name not in exclude]
    return {n: flag_values[n].value for n in names}, {n for n in names if flag_values[n].present}


def start(main: Callable[[list[str]], None], argv: list[str] | None = None, *, hide_logs: bool = True) -> None:
    """A program's `__main__`: hide TensorFlow's start-up lines (before it loads), make our log lines short, then
    absl parses the flags (`parse_flags`) and calls main(argv).

    Args:
      main: absl's main, which gets the words no flag took.
      argv: the command line (default sys.argv).
      hide_logs: hide TensorFlow's lines (`quiet.hide_tensorflow_logs`); False for a program without TensorFlow.
    """
    if hide_logs:
        quiet.hide_tensorflow_logs(sys.argv if argv is None else argv)  # --verbosity 1 shows them
    use_short_log_lines()
    app.run(main, argv=argv, flags_parser=parse_flags)


def parse_flags(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """absl's parse of the command line `argv`; returns the words no flag took.

    A value absl cannot read is one line on stderr naming the flag and exit code 2, as a config's FlagError:
    `error: --loss: must be one of gan, minimax, lsgan, hinge, wgan-gp, got 'foo'`.
    """
    try:
        return flag_values(argv)
    except flags.Error as e:
        print(f"error: {flag_error_message(e, flag_values)}", file=sys.stderr)
        sys.exit(2)


def flag_error_message(error: flags.Error, flag_values: flags.FlagValues) -> str:
    """absl's parse error as one line; a value outside an enum flag's choices reads as `check_choice` says it."""
    message = " ".join(str(error).split())
    bad = re.fullmatch(r"flag --(\w+)=(.*?): (.*)", message)
    if bad is None or bad[1] not in flag_values:
        return message
    name, value, reason = bad.groups()
    try:  # an enum flag's message names its choices
        check_choice(name, value, getattr(flag_values[name].parser, "enum_values", [value]))
    except FlagError as e:
        return str(e)
    return str(FlagError(name, reason))


class ShortLogFormatter(absl_logging.PythonFormatter):
    """Our log lines in a terminal: `15:10:53 Training data ...`, `WARNING 15:10:53 ...` for warnings and errors.

    absl's full prefix (`I1203 15:10:53.683209 140029038992256 data.py:108] `) returns with `--verbosity 1` or
    more, read when each line is written, so after the flags are parsed.
    """

    def format(self, record: logging.LogRecord) -> str:
        if flags.FLAGS["verbosity"].value >= 1:
            return super().format(record)
        level = f"{record.levelname} " if record.levelno > logging.INFO else ""
        return f"{level}{self.formatTime(record, '%H:%M:%S')} {logging.Formatter.format(self, record)}"


def use_short_log_lines() -> None:
    """Makes absl's handler (which app.run installs) write `ShortLogFormatter` lines; every program calls it."""
    absl_logging.get_absl_handler().setFormatter(ShortLogFormatter())


def exit_with(run: Callable[[list[str]], int], argv: list[str], *, takes_words: bool = False,
              command_line: list[str] | None = None) -> None:
    """Calls run(argv) and exits with its code; a leftover word or a DcganError prints one line to stderr and
    exits 2.

    Args:
      run: the program's work; it gets `argv`.
      argv: absl's leftover argv: the program's name, then the words that no flag took.
      takes_words: whether the program takes words (complete.py's image paths); see `check_words`.
      command_line: the command line absl parsed, when not sys.argv.
    """
    try:
        check_words(argv, takes_words=takes_words, command_line=command_line)
        code = run(argv)
    except DcganError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)


# What a user may mean as a boolean flag's value (absl itself reads true/t/1 and false/f/0).
_TRUE_WORDS = ("true", "t", "yes", "y", "on", "1")
_FALSE_WORDS = ("false", "f", "no", "n", "off", "0")


def check_words(argv: list[str], *, takes_words: bool = False, command_line: list[str] | None = None,
                flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Raises a DcganError naming the first word left over after the flags that the program does not take.

    absl's boolean flags take no separate value, so `--train False` leaves the word `False` over (and turns
    training on). A word that reads as a boolean value right after a boolean flag is always an error, naming
    the right spelling (`--notrain` or `--train=false`); any other word is an error unless the program takes
    words. Words after `--` are the program's words whatever they read.

    Args:
      argv: absl's leftover argv: the program's name, then the words that no flag took.
      takes_words: whether the program takes words (complete.py's image paths).
      command_line: the command line absl parsed (default sys.argv): which flag each word follows.
      flag_values: the flags it was parsed with.
    """
    context = _words_after(sys.argv if command_line is None else command_line, flag_values)
    for word in argv[1:]:
        while context and context[0][0] != word:  # a word absl took from a --flagfile is not in the command line
            context.pop(0)
        after = context.pop(0)[1] if context else None
        if after is not None:
            spelling = _boolean_spelling(word, after, flag_values)
            if spelling:
                raise DcganError(f"unexpected word {word!r} after {after}: a boolean flag takes no separate value; "
                                 f"write {spelling}")
        if not takes_words:
            raise DcganError(f"unexpected word {word!r}: this program takes flags only (--help lists them); "
                             "a flag's value goes after = or as the next word")


def _words_after(command_line: list[str], flag_values: flags.FlagValues) -> list[tuple[str, str | None]]:
    """Each word of `command_line` that no flag takes, with the boolean flag written just before it (or None)."""
    words, before = [], None
    args = iter(command_line[1:])
    for arg in args:
        if arg == "--":
            words += [(word, None) for word in args]
            break
        if arg == "-" or not arg.startswith("-"):
            words.append((arg, before))
            before = None
            continue
        name, eq, _ = arg.lstrip("-").partition("=")
        before = None
        if eq:
            continue
        if _boolean_flag(name, flag_values) is not None:
            before = arg
        elif name in flag_values:
            next(args, None)  # the flag's value
    return words


def _boolean_flag(name: str, flag_values: flags.FlagValues) -> flags.Flag | None:
    """The boolean flag that `--name` sets (`--noname` clears it), or None."""
    for candidate in (name, name[2:] if name.startswith("no") else None):
        if candidate and candidate in flag_values and flag_values[candidate].boolean:
            return flag_values[candidate]
    return None


def _boolean_spelling(word: str, after: str, flag_values: flags.FlagValues) -> str:
    """How to write what `after word` meant (`--train False` -> `--notrain or --train=false`); "" when `word` is
    not a boolean value."""
    name = after.lstrip("-")
    flag = _boolean_flag(name, flag_values)
    negated = name not in flag_values  # --noflag
    value = word.lower()
    if value == "auto" and isinstance(flag.parser, AutoBooleanParser):
        return f"--{flag.name}=auto"
    if value not in _TRUE_WORDS + _FALSE_WORDS:
        return ""
    if negated:  # --noflag with a value: which one was meant is unclear
        return f"--{flag.name} or --no{flag.name} (or --{flag.name}=true|false)"
    if value in _TRUE_WORDS:
        return f"--{flag.name} or --{flag.name}=true"
    return f"--no{flag.name} or --{flag.name}=false"
