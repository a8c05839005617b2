"""Tests of dcgan_tf.prepare: boxes, crops, manifest, resume, duplicates, errors, the CLI and the detectors."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest
from absl import flags
from PIL import Image, ImageDraw, ImageFilter

from dcgan_tf import prepare
from dcgan_tf.cli import parse_flags
from dcgan_tf.errors import FlagError
from dcgan_tf.prepare import PrepareConfig, centre_square, expand_box, prepare_folder

REPO = pathlib.Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------------
# Helpers


def _noise(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _draw_face(size: int = 200, canvas: tuple[int, int] = (320, 260)) -> Image.Image:
    """A cartoon frontal face (hair, skin ellipse, brows, eyes, nose shadow, mouth) the Haar cascade finds."""
    img = Image.new("RGB", canvas, (235, 235, 230))
    d = ImageDraw.Draw(img)
    cx, cy, s = canvas[0] // 2, canvas[1] // 2, size / 200

    def ellipse(x0, y0, x1, y1, fill):
        d.ellipse([cx + x0 * s, cy + y0 * s, cx + x1 * s, cy + y1 * s], fill=fill)

    def rect(x0, y0, x1, y1, fill):
        d.rectangle([cx + x0 * s, cy + y0 * s, cx + x1 * s, cy + y1 * s], fill=fill)

    rect(-80, -110, 80, -40, (60, 40, 30))  # hair
    ellipse(-75, -100, 75, 100, (224, 172, 140))  # face
    rect(-55, -48, -15, -40, (50, 35, 25))  # eyebrows
    rect(15, -48, 55, -40, (50, 35, 25))
    ellipse(-50, -30, -20, -12, (255, 255, 255))  # eyes
    ellipse(20, -30, 50, -12, (255, 255, 255))
    ellipse(-42, -28, -28, -14, (30, 20, 20))  # pupils
    ellipse(28, -28, 42, -14, (30, 20, 20))
    d.polygon([(cx - 6 * s, cy - 10 * s), (cx - 14 * s, cy + 25 * s), (cx + 14 * s, cy + 25 * s)],
              fill=(190, 135, 105))  # nose shadow
    ellipse(-30, 45, 30, 60, (150, 60, 60))  # mouth
    return img.filter(ImageFilter.GaussianBlur(1.5))


def _fingerprint(folder: pathlib.Path) -> dict[str, tuple[str, int]]:
    """relative path -> (SHA-1, mtime_ns) of every file and folder under `folder`."""
    out = {}
    for path in sorted(folder.rglob("*")):
        data = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(folder))] = (data, path.stat().st_mtime_ns)
    return out


def _manifest(out: pathlib.Path) -> list[dict[str, str]]:
    with open(out / prepare.MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


class FakeDetector:
    """Known (x, y, w, h) boxes per image width; counts its calls."""

    def __init__(self, boxes_by_width: dict[int, list[tuple[int, int, int, int]]]):
        self.boxes_by_width, self.calls = boxes_by_width, 0

    def __call__(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        assert gray.dtype == np.uint8 and gray.ndim == 2
        self.calls += 1
        return list(self.boxes_by_width.get(gray.shape[1], []))


@pytest.fixture
def raw(tmp_path) -> pathlib.Path:
    """tmp_path/raw: images of several modes and sizes in sub-folders, a duplicate and an unreadable file."""
    folder = tmp_path / "raw"
    (folder / "sub" / "deep").mkdir(parents=True)
    _noise(120, 80, 0).save(folder / "wide.png")  # RGB
    _noise(60, 90, 1, "L").save(folder / "sub" / "tall.png")  # grayscale
    _noise(100, 100, 2, "RGBA").save(folder / "sub" / "alpha.png")
    _noise(100, 100, 3, "P").save(folder / "sub" / "deep" / "palette.gif")
    _noise(70, 50, 4, "CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).save(folder / "sixteen.png")
    (folder / "sub" / "copy.png").write_bytes((folder / "wide.png").read_bytes())  # exact duplicate
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not matched by the pattern")
    return folder


def _cfg(raw: pathlib.Path, **kwargs) -> PrepareConfig:
    return PrepareConfig(input=str(raw), output=str(raw.parent / "out"), **{"detector": "none", "size": 16,
                                                                            **kwargs})


# ----------------------------------------------------------------------------------------------------------
# Boxes


@pytest.mark.parametrize("box, expand, size, expected", [
    ((40, 40, 20, 20), 1.0, (100, 100), (40, 40, 60, 60)),  # inside: unchanged
    ((40, 40, 20, 20), 2.0, (100, 100), (30, 30, 70, 70)),  # doubled about the centre
    ((40, 40, 20, 10), 1.0, (100, 100), (40, 35, 60, 55)),  # not square: the longer side, squared
    ((0, 0, 20, 20), 2.0, (100, 100), (0, 0, 20, 20)),  # top-left corner: cannot grow about its centre
    ((80, 80, 20, 20), 3.0, (100, 100), (80, 80, 100, 100)),  # bottom-right corner
    ((10, 40, 20, 20), 3.0, (100, 100), (0, 30, 40, 70)),  # left edge: shrunk to the widest centred square
    ((45, 0, 10, 10), 4.0, (100, 60), (45, 0, 55, 10)),  # top edge
    ((-50, -50, 300, 300), 1.0, (100, 80), (20, 0, 100, 80)),  # larger than the image: the whole height
    ((-10, 20, 40, 40), 1.0, (200, 100), (0, 20, 40, 60)),  # hangs out on the left: moved inside
    ((40, 40, 20, 20), 0.5, (100, 100), (45, 45, 55, 55)),  # shrunk
    ((0, 0, 1, 1), 1.0, (1, 1), (0, 0, 1, 1)),  # a one-pixel image
])
def test_expand_box(box, expand, size, expected):
    width, height = size
    x0, y0, x1, y1 = got = expand_box(box, expand=expand, width=width, height=height)
    assert got == expected
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and x1 - x0 == y1 - y0


def test_expand_box_always_inside_and_square():
    rng = np.random.default_rng(0)
    for _ in range(500):
        width, height = rng.integers(1, 300, 2)
        box = (*rng.integers(-100, 300, 2), *rng.integers(1, 400, 2))
        x0, y0, x1, y1 = expand_box(box, expand=float(rng.uniform(0.2, 4)), width=width, height=height)
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and x1 - x0 == y1 - y0


def test_centre_square():
    assert centre_square(120, 80) == (20, 0, 100, 80)
    assert centre_square(60, 90) == (0, 15, 60, 75)


# ----------------------------------------------------------------------------------------------------------
# --detector none, end to end


@pytest.mark.parametrize("grayscale, mode", [(False, "RGB"), (True, "L")])
def test_none_detector_crops_every_mode(raw, grayscale, mode):
    summary = prepare_folder(_cfg(raw, grayscale=grayscale), stream=open(os.devnull, "w"))
    rows = {r["source"]: r for r in _manifest(raw.parent / "out")}
    assert set(rows) == {"wide.png", "sub/tall.png", "sub/alpha.png", "sub/deep/palette.gif", "cmyk.jpg",
                         "sixteen.png", "sub/copy.png", "broken.jpg"}
    kept = [r for r in rows.values() if r["status"] == "kept"]
    assert len(kept) == 6 and summary.written == 6 and summary.read == 8
    for r in kept:
        with Image.open(raw.parent / "out" / r["output"]) as img:
            assert img.size == (16, 16) and img.mode == mode
    assert rows["sub/deep/palette.gif"]["output"] == "sub__deep__palette.gif_0.png"
    assert [rows["wide.png"][k] for k in ("x0", "y0", "x1", "y1")] == ["20", "0", "100", "80"]
    assert rows["broken.jpg"]["status"] == "dropped:unreadable" and "unreadable" in rows["broken.jpg"]["detail"]
    assert summary.skipped == {"duplicate": 1, "unreadable": 1}


def test_none_detector_min_size_and_jpg(raw):
    summary = prepare_folder(_cfg(raw, min_size=60, format="jpg"), stream=open(os.devnull, "w"))
    rows = {r["source"]: r for r in _manifest(raw.parent / "out")}
    assert rows["cmyk.jpg"]["status"] == "dropped:too_small"  # 70x50: a 50 px square
    assert rows["sixteen.png"]["status"] == "dropped:too_small"
    assert rows["sub/tall.png"]["output"] == "sub__tall.png_0.jpg"
    with Image.open(raw.parent / "out" / "sub__tall.png_0.jpg") as img:
        assert img.format == "JPEG" and img.size == (16, 16)
    assert summary.skipped["too_small"] == 2


def test_exact_duplicates_written_once(raw):
    prepare_folder(_cfg(raw), stream=open(os.devnull, "w"))
    rows = {r["source"]: r for r in _manifest(raw.parent / "out")}
    first, dup = rows["sub/copy.png"], rows["wide.png"]  # sorted: sub/copy.png comes first
    assert first["status"] == "kept" and dup["status"] == "dropped:duplicate"
    assert dup["output"] == first["output"] == "sub__copy.png_0.png" and dup["sha1"] == first["sha1"]
    assert "sub/copy.png" in dup["detail"]
    assert not (raw.parent / "out" / "wide.png_0.png").exists()


def test_input_folder_untouched(raw):
    before = _fingerprint(raw)
    prepare_folder(_cfg(raw), stream=open(os.devnull, "w"))
    prepare_folder(_cfg(raw), stream=open(os.devnull, "w"))  # and a resumed run
    assert _fingerprint(raw) == before


# ----------------------------------------------------------------------------------------------------------
# Detections (a fake detector with known boxes), manifest, resume


def _face_folder(tmp_path) -> pathlib.Path:
    folder = tmp_path / "raw"
    (folder / "a").mkdir(parents=True)
    _noise(200, 100, 0).save(folder / "two.png")  # width 200: two detections, one small
    _noise(150, 100, 1).save(folder / "a" / "none.png")  # width 150: nothing found
    _noise(100, 100, 2).save(folder / "a" / "edge.png")  # width 100: a detection at the corner
    return folder


BOXES = {200: [(20, 10, 10, 10), (100, 30, 40, 40)], 100: [(0, 0, 30, 30)]}


def test_detections_become_crops_with_manifest_rows(tmp_path):
    raw, detector = _face_folder(tmp_path), FakeDetector(BOXES)
    cfg = _cfg(raw, detector="face", expand=1.5, min_size=20)
    summary = prepare_folder(cfg, detector=detector, stream=open(os.devnull, "w"))
    rows = [(r["source"], r["detection"], r["x0"], r["y0"], r["x1"], r["y1"], r["output"], r["status"])
            for r in _manifest(raw.parent / "out")]
    assert rows == [
        ("a/edge.png", "0", "0", "0", "30", "30", "a__edge.png_0.png", "kept"),
        ("a/none.png", "", "", "", "", "", "", "dropped:no_face"),
        ("two.png", "0", "90", "20", "150", "80", "two.png_0.png", "kept"),  # the largest comes first
        ("two.png", "1", "18", "8", "33", "23", "", "dropped:too_small"),
    ]
    assert detector.calls == 3
    assert (summary.found, summary.written, dict(summary.skipped)) == (3, 2, {"no_face": 1, "too_small": 1})
    with Image.open(raw.parent / "out" / "two.png_0.png") as img:
        expected = _noise(200, 100, 0).crop((90, 20, 150, 80)).resize((16, 16), Image.Resampling.BILINEAR)
        np.testing.assert_array_equal(np.asarray(img), np.asarray(expected))
    assert "3 faces found, 2 crops written" in summary.line() and "no_face 1" in summary.line()


def test_resume_skips_finished_files(tmp_path):
    raw = _face_folder(tmp_path)
    cfg = _cfg(raw, detector="face")
    first = FakeDetector(BOXES)
    prepare_folder(cfg, detector=first, stream=open(os.devnull, "w"))
    out = raw.parent / "out"
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    again = FakeDetector(BOXES)
    summary = prepare_folder(cfg, detector=again, stream=open(os.devnull, "w"))
    assert again.calls == 0 and summary.read == 0 and summary.skipped == {"already_done": 3}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == mtimes
    assert len(_manifest(out)) == 4

    _noise(200, 100, 9).save(raw / "new.png")  # a file added later is processed
    added = FakeDetector(BOXES)
    prepare_folder(cfg, detector=added, stream=open(os.devnull, "w"))
    assert added.calls == 1 and (out / "new.png_0.png").exists()


def test_resume_after_a_half_written_manifest(tmp_path):
    raw = _face_folder(tmp_path)
    cfg = _cfg(raw, detector="face")
    prepare_folder(cfg, detector=FakeDetector(BOXES), stream=open(os.devnull, "w"))
    manifest = raw.parent / "out" / prepare.MANIFEST
    manifest.write_text(manifest.read_text()[:-25])  # killed in the middle of two.png's rows
    detector = FakeDetector(BOXES)
    summary = prepare_folder(cfg, detector=detector, stream=open(os.devnull, "w"))
    assert detector.calls == 1 and summary.skipped["already_done"] == 2
    rows = _manifest(raw.parent / "out")
    assert [r["source"] for r in rows] == ["a/edge.png", "a/none.png", "two.png", "two.png"]


def test_resume_refuses_other_settings(tmp_path):
    raw = _face_folder(tmp_path)
    prepare_folder(_cfg(raw), stream=open(os.devnull, "w"))
    with pytest.raises(FlagError, match="--size: is 32 but .* was made with 16"):
        prepare_folder(_cfg(raw, size=32), stream=open(os.devnull, "w"))


# ----------------------------------------------------------------------------------------------------------
# Errors


def test_folder_errors(tmp_path, raw):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    cases = [
        (dict(input=str(tmp_path / "missing")), "--input: .*missing does not exist"),
        (dict(input=str(raw / "wide.png")), "--input: .* is a file"),
        (dict(input=str(tmp_path / "empty")), "--input: the folder .* is empty"),
        (dict(input=str(tmp_path / "texts")), "--input: no file .* matches .* it holds 1 .txt"),
        (dict(output=str(raw)), "--output: .* is inside --input"),
        (dict(output=str(raw / "sub" / "out")), "--output: .* is inside --input"),
        (dict(output=str(raw / "wide.png")), "--output: .* is inside --input"),
        (dict(output=str(raw.parent / "raw" / "." / "x")), "--output: .* is inside --input"),
        (dict(size=0), "--size: must be >= 1"),
        (dict(expand=0.0), "--expand: must be > 0"),
        (dict(min_size=-1), "--min_size"),
        (dict(detector="dog"), "--detector: must be one of face, catface, none"),
        (dict(format="gif"), "--format"),
        (dict(output=""), "--output: is required"),
    ]
    before = _fingerprint(raw)
    for kwargs, message in cases:
        cfg = dataclasses.replace(_cfg(raw), **kwargs)
        with pytest.raises(FlagError, match=message):
            prepare_folder(cfg, stream=open(os.devnull, "w"))
    assert _fingerprint(raw) == before


def test_missing_opencv_names_detector_and_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    with pytest.raises(FlagError, match=r'--detector: needs OpenCV: pip install "\.\[prepare\]".*--detector none'):
        prepare.create_detector("face")
    assert prepare.create_detector("none") is None


def test_opencv_without_cascades_names_detector(monkeypatch, tmp_path):
    fake = types.SimpleNamespace(__version__="5.0.0", data=types.SimpleNamespace(haarcascades=str(tmp_path)))
    monkeypatch.setitem(sys.modules, "cv2", fake)
    with pytest.raises(FlagError, match="--detector: OpenCV 5.0.0 has no Haar cascade .*--detector none"):
        prepare.create_detector("catface")


def test_foreign_manifest_refused(raw):
    out = raw.parent / "out"
    out.mkdir()
    (out / prepare.MANIFEST).write_text("a,b\n1,2\n")
    with pytest.raises(prepare.DcganError, match="not a dcgan_tf.prepare manifest"):
        prepare_folder(_cfg(raw), stream=open(os.devnull, "w"))


# ----------------------------------------------------------------------------------------------------------
# Command line (one process each: the flags are global)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "dcgan_tf.prepare", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


def test_cli_detector_none_end_to_end(raw):
    out = raw.parent / "out"
    done = _cli("--input", str(raw), "--output", str(out), "--size", "8", "--detector", "none")
    assert done.returncode == 0, done.stderr
    assert "read 8 of 8 files: 7 squares, 6 crops written" in done.stdout
    assert "duplicate 1, unreadable 1" in done.stdout
    assert len(list(out.glob("*.png"))) == 6


def test_cli_error_is_one_line_exit_2(raw):
    done = _cli("--input", str(raw), "--output", str(raw / "out"), "--detector", "none")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --output: ")


def _program_flags() -> flags.FlagValues:
    """The program's flags, on their own FlagValues (the global one may hold main.py's --input_fname_pattern)."""
    values = flags.FlagValues()
    prepare.define_program_flags(values)
    return values


@pytest.mark.parametrize("flag,value", [("detector", "dog"), ("format", "gif")])
def test_a_value_outside_the_choices_is_one_line_and_exit_2(capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        parse_flags(["prepare", "--input=raw", "--output=out", f"--{flag}", value], _program_flags())
    assert e.value.code == 2
    choices = {"detector": "face, catface, none", "format": "png, jpg"}[flag]
    assert capsys.readouterr().err == f"error: --{flag}: must be one of {choices}, got {value!r}\n"


def test_the_flags_keep_their_defaults_and_validate_as_the_library():
    values = _program_flags()
    values(["prepare", "--input=raw", "--output=out"])
    assert prepare.config_from_flags(values) == PrepareConfig("raw", "out")
    assert PrepareConfig("raw", "out").size == 64 and PrepareConfig("raw", "out").detector == "face"
    values = _program_flags()
    values(["prepare", "--output=out"])
    with pytest.raises(FlagError, match="^--input: is required"):
        prepare.config_from_flags(values)


# ----------------------------------------------------------------------------------------------------------
# The real Haar cascade (needs OpenCV with its cascades: opencv-python-headless<5)


def _real_detector(name: str = "face"):
    try:
        return prepare.create_detector(name)
    except FlagError as e:
        pytest.skip(f"no usable OpenCV Haar cascade here ({e})")


def test_real_cascade_finds_nothing_on_a_blank_image():
    detect = _real_detector()
    assert detect(np.full((120, 160), 200, np.uint8)) == []


def test_real_cascade_finds_a_drawn_face(tmp_path):
    detect = _real_detector()
    raw = tmp_path / "raw"
    raw.mkdir()
    _draw_face(200).save(raw / "face.png")
    Image.new("RGB", (320, 260), (235, 235, 230)).save(raw / "blank.png")
    summary = prepare_folder(_cfg(raw, detector="face", size=32, expand=1.2), detector=detect,
                             stream=open(os.devnull, "w"))
    rows = {r["source"]: r for r in _manifest(raw.parent / "out")}
    assert rows["blank.png"]["status"] == "dropped:no_face"
    face = rows["face.png"]
    assert face["status"] == "kept" and summary.found == 1
    x0, y0, x1, y1 = (int(face[k]) for k in ("x0", "y0", "x1", "y1"))
    assert x0 < 160 < x1 and y0 < 130 < y1 and 150 < x1 - x0 <= 260  # around the drawn face's centre
    with Image.open(raw.parent / "out" / face["output"]) as img:
        assert img.size == (32, 32) and img.mode == "RGB"
