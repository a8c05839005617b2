"""flags.md stays in sync with the code: every flag each program defines has a row (flag | default | meaning)."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = {"main.py": "main.py", "complete.py": "complete.py",
            "dcgan_tf/classifier.py": "python -m dcgan_tf.classifier",
            "dcgan_tf/prepare.py": "python -m dcgan_tf.prepare"}


def defined_flags(path):
    with open(os.path.join(ROOT, path)) as f:
        return re.findall(r'DEFINE_\w+\(\s*"(\w+)"', f.read())


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
