"""flags.md stays in sync with the code: every flag each program defines has a row (flag | default | meaning).

The flags are read from the programs themselves (`--helpxml`), so flags made from config dataclasses count too.
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
def defined_flags(path):
    """The names of the flags the program at `path` defines itself (not absl's or TensorFlow's)."""
    command = [path] if path.endswith(".py") and "/" not in path else ["-m", path[:-3].replace("/", ".")]
    env = {**os.environ, "PYTHONPATH": ROOT}
    xml = subprocess.run([sys.executable, *command, "--helpxml"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120).stdout
    flags = ET.fromstring(xml).iter("flag")
    return [f.findtext("name") for f in flags if f.findtext("file").endswith(path)]


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
