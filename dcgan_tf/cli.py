"""What both command-line programs share: flags made from the config dataclasses, and one-line user errors.

Every setting is declared once, as a dataclass field made with `config.setting` (default, help text, enum
choices); `define_flags` turns the fields into absl flags of the same names and `flag_values` reads them back,
so the flags, the configs and flags.md (checked by tests/test_flags_doc.py) cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable
from typing import Any

from absl import app, flags

from dcgan_tf import quiet
from dcgan_tf.errors import DcganError


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


_DEFINE = {"bool": flags.DEFINE_boolean, "int": flags.DEFINE_integer, "float": flags.DEFINE_float,
           "str": flags.DEFINE_string}


def define_flags(config_cls: type, *, exclude: Iterable[str] = (), flag_values: flags.FlagValues = flags.FLAGS
                 ) -> None:
    """Defines an absl flag for every field of the dataclass `config_cls` made with `config.setting`.

    The flag's type comes from the field's annotation (bool, int, float, str, each optionally `| None`), an
    enum flag from the field's choices; a `bool | None` field takes `auto` for None. The flags belong to the
    calling module, so a program's `--help` lists them as its own.
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
            flags.DEFINE_enum(field.name, field.default, [str(c) for c in choices], help_text,
                              flag_values=flag_values, module_name=module_name)
        else:
            _DEFINE[kind](field.name, field.default, help_text, flag_values=flag_values, module_name=module_name)


def flag_values(config_cls: type, *, exclude: Iterable[str] = (), flag_values: flags.FlagValues = flags.FLAGS
                ) -> tuple[dict[str, Any], set[str]]:
    """The values of `config_cls`'s flags by field name, and the names of those given on the command line."""
    names = [f.name for f in dataclasses.fields(config_cls) if f.name not in exclude]
    return {n: flag_values[n].value for n in names}, {n for n in names if flag_values[n].present}


def start(main: Callable[[list[str]], None]) -> None:
    """A program's `__main__`: hide TensorFlow's start-up lines (before it loads), then absl parses the flags and
    calls main(argv)."""
    quiet.hide_tensorflow_logs(sys.argv)  # --verbosity 1 shows them
    app.run(main)


def exit_with(run: Callable[[list[str]], int], argv: list[str]) -> None:
    """Calls run(argv) and exits with its code; a DcganError prints one line to stderr and exits 2."""
    try:
        code = run(argv)
    except DcganError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)
