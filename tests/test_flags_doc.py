"""flags.md stays in sync with the code: every flag each program (main.py, complete.py, the classifier,
prepare) defines has a row (flag | default | meaning), with the program's default and, for a flag with fixed
choices (an enum flag, made from a setting's choices), every choice in backticks.

The flags are read from the programs themselves (`--helpxml`), so flags made from config dataclasses count too.
flags.md writes defaults as `False`, `64`, `""`, `none`; `None` for a number left to a derived value, `auto`
for an on/off flag decided at run time; a cell that explains a derived default ("`""` (= ...)") is compared on
its leading literal.
"""

import functools
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = {"main.py": "main.py", "complete.py": "complete.py",
            "dcgan_tf/classifier.py": "python -m dcgan_tf.classifier",
            "dcgan_tf/prepare.py": "python -m dcgan_tf.prepare"}


@functools.cache
def program_flags(path):
    """{name: (type, default, choices)} of the flags the program at `path` defines itself (not absl's or
    TensorFlow's), as its --helpxml gives them."""
    command = [path] if path.endswith(".py") and "/" not in path else ["-m", path[:-3].replace("/", ".")]
    env = {**os.environ, "PYTHONPATH": ROOT}
    xml = subprocess.run([sys.executable, *command, "--helpxml"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120).stdout
    return {f.findtext("name"): (f.findtext("type"), f.findtext("default") or "",
                                 [e.text for e in f.iter("enum_value")])
            for f in ET.fromstring(xml).iter("flag") if f.findtext("file").endswith(path)}


def defined_flags(path):
    """The names of the flags the program at `path` defines itself."""
    return list(program_flags(path))


def documented_section(title):
    with open(os.path.join(ROOT, "flags.md")) as f:
        text = f.read()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.mark.parametrize("path,title", PROGRAMS.items())
def test_every_defined_flag_has_a_row_in_its_section(path, title):
    names = defined_flags(path)
    assert len(names) >= 5, f"no flags found in {path}"
    section = documented_section(title)
    missing = [n for n in names if not re.search(rf"^\| `--{n}` \| [^|]+ \| ", section, re.M)]
    assert not missing, f"flags.md section {title!r} lacks rows for {missing}"


def test_no_row_documents_a_flag_that_does_not_exist():
    for path, title in PROGRAMS.items():
        names = set(defined_flags(path))
        rows = re.findall(r"^\| `--(\w+)` \|", documented_section(title), re.M)
        assert set(rows) <= names, f"{title}: documented but not defined: {sorted(set(rows) - names)}"


def documented_default(flag_type, default):
    """How flags.md writes a --helpxml default: `False`, `64`, `""`, `none`, `None`, `auto`."""
    if flag_type == "bool":
        return {"true": "True", "false": "False", "": "auto"}[default]
    if default == "":
        return '""' if flag_type.startswith("string") else "None"
    return default


def same_default(flag_type, written, expected):
    if flag_type in ("int", "float") and expected != "None":
        try:
            return float(written) == float(expected)  # `0` for 0.0, `1e-8` for 1e-08
        except ValueError:
            return False
    return written == expected


def rows(title):
    """{flag name: (default cell, meaning)} of a flags.md section; a table headed by a flag (a table of one
    flag's values) is not a row of it."""
    lines = documented_section(title).splitlines() + [""]
    found = {}
    for line, after in zip(lines, lines[1:]):
        row = re.match(r"\| `--(\w+)` \| ([^|]+) \| (.*)\|$", line)
        if row and not after.startswith("| ---"):
            found[row.group(1)] = (row.group(2).strip(), row.group(3))
    return found


@pytest.mark.parametrize("path,title", PROGRAMS.items())
def test_every_row_has_the_programs_default_and_choices(path, title):
    wrong = []
    for name, (default_cell, meaning) in rows(title).items():
        flag_type, default, choices = program_flags(path)[name]
        literal = re.match(r"`([^`]*)`", default_cell)
        expected = documented_default(flag_type, default)
        if not literal or not same_default(flag_type, literal.group(1), expected):
            wrong.append(f"--{name}: flags.md says {default_cell}, the program `{expected}`")
        missing = [c for c in choices if f"`{c}`" not in default_cell + meaning]
        if missing:
            wrong.append(f"--{name}: flags.md lacks the choices {missing}")
    assert not wrong, f"flags.md section {title!r}: " + "; ".join(wrong)


@pytest.mark.parametrize("path", PROGRAMS)
def test_every_enum_like_setting_is_an_enum_flag(path):
    """A flag whose help names its values (`x, y or z`) is made from a setting with choices, so absl checks it
    and --help and flags.md list the choices: known enum flags of each program are enums."""
    enums = {"main.py": {"arch", "d_norm", "eval_features", "idx_split", "interpolation", "loss", "nan_policy",
                         "option", "preset", "strategy", "z_dist"},
             "complete.py": {"approach", "blend", "class_search", "half_side", "mask_type"},
             "dcgan_tf/classifier.py": {"dataset"}, "dcgan_tf/prepare.py": {"detector", "format"}}[path]
    found = {name for name, (_, _, choices) in program_flags(path).items() if choices}
    assert found == enums


def test_the_check_reads_defaults_as_flags_md_writes_them():
    assert documented_default("bool", "false") == "False" and documented_default("bool", "") == "auto"
    assert documented_default("string", "") == '""' and documented_default("int", "") == "None"
    assert documented_default("string enum", "none") == "none"
    assert same_default("float", "0", "0.0") and same_default("float", "1e-8", "1e-08")
    assert not same_default("int", "64", "128") and not same_default("float", "None", "0.5")
