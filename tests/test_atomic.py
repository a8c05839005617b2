"""Atomic writes: a file or folder appears whole or not at all; a failed write keeps the old one, no temporary."""

from __future__ import annotations

import json
import os

import pytest

from dcgan_tf.atomic import atomic_path, write_json_atomic, write_text_atomic


def test_text_and_json_written_whole_into_new_folders(tmp_path):
    write_text_atomic(str(tmp_path / "a" / "b.txt"), "line\r\n", fsync=True)
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"line\r\n"  # no newline translation
    write_json_atomic(str(tmp_path / "c.json"), {"b": 1, "a": [2]})
    assert (tmp_path / "c.json").read_text() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'
    assert sorted(os.listdir(tmp_path)) == ["a", "c.json"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.weights.h5"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(str(path)) as tmp:
        assert tmp.endswith(".x.weights.h5") and os.path.dirname(tmp) == str(tmp_path)  # the suffix is kept
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.weights.h5"]


def test_a_folder_replaces_the_old_folder(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with atomic_path(str(target)) as tmp:
        os.makedirs(tmp)
        write_json_atomic(os.path.join(tmp, "export.json"), {"step": 3})
    assert os.listdir(target) == ["export.json"] and json.loads((target / "export.json").read_text()) == {"step": 3}
    assert os.listdir(tmp_path) == ["export"]  # neither the temporary nor the old folder is left
