r"""Turn a folder of real photos into a training-ready folder: detect, crop and align faces as square images.

Usage:
    python -m dcgan_tf.prepare --input raw/ --output aligned/ --size 64
    python -m dcgan_tf.prepare --input cats/ --output cats64/ --detector catface --expand 1.6 --min_size 48
    python -m dcgan_tf.prepare --input photos/ --output photos64/ --detector none --format jpg

Every image under --input (sub-folders too) is read as training reads it (EXIF rotation applied, alpha on white,
16-bit / CMYK / palette converted; see `dcgan_tf.data`). `--detector face|catface` finds faces with OpenCV's
Haar cascades (the optional `prepare` extra); each detection, squared, scaled by --expand about its centre and
kept inside the image, becomes its own `--size` x `--size` crop. `--detector none` takes the largest centred
square. Sub-folders are flattened into file names: `a/b/c.jpg` -> `a__b__c.jpg_0.png` (0 = detection index,
largest face first).

`<output>/manifest.csv` gets one row per crop or dropped file (source, detection, box x0,y0,x1,y1, output,
status `kept` or `dropped:<reason>`, the crop's SHA-1, detail), appended and fsynced file by file, so an
interrupted run resumes where it stopped: a re-run skips the sources already in the manifest. Crops with
exactly the same pixels are written once (status `dropped:duplicate`, output = the kept file).
`<output>/prepare.json` holds the settings; a re-run with different ones is refused. --input is only read.

The library entry point is `prepare_folder(PrepareConfig(...))`; the boxes come from `expand_box` and
`centre_square`, which are pure.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import numpy as np
from absl import flags
from PIL import Image, ImageOps

from dcgan_tf.atomic import write_json_atomic, write_text_atomic
from dcgan_tf.cli import define_flags, exit_with, flag_values, start
from dcgan_tf.config import check_choices, setting
from dcgan_tf.decode import RESAMPLE, list_image_files, skip_reason, to_l_or_rgb
from dcgan_tf.errors import DcganError, FlagError, check_range
from dcgan_tf.images import save_pil_atomic
from dcgan_tf.progress import ProgressBar

DEFAULT_PATTERN = "*.jpg,*.jpeg,*.png,*.bmp,*.gif,*.tif,*.tiff,*.webp,*.ppm,*.pgm,*.pbm,*.pnm"
CASCADES = {"face": "haarcascade_frontalface_default.xml", "catface": "haarcascade_frontalcatface.xml"}
DETECTORS = (*CASCADES, "none")
FORMATS = {"png": "PNG", "jpg": "JPEG"}
MANIFEST = "manifest.csv"
SETTINGS = "prepare.json"
MANIFEST_FIELDS = ("source", "detection", "x0", "y0", "x1", "y1", "output", "status", "sha1", "detail")
KEPT = "kept"
# Settings a resumed run must share with the run that started the output folder (--input_fname_pattern may
# change: a wider pattern just adds files).
RESUME_KEYS = ("input", "size", "detector", "expand", "min_size", "format", "grayscale")
INSTALL_HINT = 'pip install ".[prepare]" (opencv-python-headless<5, which ships the Haar cascades)'

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive), inside the image
# A detector maps a grayscale uint8 [H, W] image to (x, y, w, h) boxes, as cv2's detectMultiScale.
Detector = Callable[[np.ndarray], list[tuple[int, int, int, int]]]


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """The settings of one `prepare_folder` run; each field is the flag of the same name (`config.setting`)."""

    input: str | None = setting(None, "Folder of source images (sub-folders too); never modified.")
    output: str | None = setting(None, "Folder for the crops, manifest.csv and prepare.json (outside --input).")
    size: int = setting(64, "Side of the square crops in pixels.")
    detector: str = setting("face", "Faces found by OpenCV's Haar cascades (face, catface), or none: the largest "
                                    "centred square.", choices=DETECTORS)
    expand: float = setting(1.0, "Scale of each detected box about its centre (2.0 doubles its side).")
    min_size: int = setting(0, "Drop detections (or centre squares) smaller than this many pixels.")
    input_fname_pattern: str = setting(DEFAULT_PATTERN, "Comma-separated patterns of image file names.")
    format: str = setting("png", "Output format.", choices=tuple(FORMATS))
    grayscale: bool = setting(False, "Write grayscale (L) crops; by default RGB.")

    def validate(self) -> PrepareConfig:
        """Returns self; raises FlagError naming the first bad flag."""
        for flag in ("input", "output"):
            if not getattr(self, flag):
                raise FlagError(flag, "is required: the folder to read from (--input) or write to (--output)")
        check_range("size", self.size, self.size >= 1, ">= 1")
        check_choices(self)
        if not (self.expand > 0 and math.isfinite(self.expand)):
            raise FlagError("expand", f"must be > 0 (1.0 keeps the detected box, 2.0 doubles it), got {self.expand}")
        check_range("min_size", self.min_size, self.min_size >= 0, ">= 0")
        if not _patterns(self.input_fname_pattern):
            raise FlagError("input_fname_pattern", "is empty; e.g. '*.jpg,*.png'")
        return self


@dataclasses.dataclass
class PrepareSummary:
    """What one run did.

    Attributes:
      output: the output folder.
      files: source files matching the pattern.
      read: files processed by this run (the others were done by an earlier run).
      found: detections (or centre squares with --detector none) in the files read.
      written: crops written.
      skipped: reason -> count: `already_done` files and the `dropped:<reason>` rows of this run.
      detector: the --detector used.
    """

    output: str
    files: int = 0
    read: int = 0
    found: int = 0
    written: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    detector: str = "face"

    def line(self) -> str:
        """One summary line for the console."""
        found = "faces found" if self.detector != "none" else "squares"
        why = ", ".join(f"{reason} {n}" for reason, n in sorted(self.skipped.items())) or "none"
        return (f"read {self.read} of {self.files} files: {self.found} {found}, {self.written} crops written to "
                f"{self.output}; skipped: {why}")


# ----------------------------------------------------------------------------------------------------------
# Boxes


def expand_box(box: tuple[int, int, int, int], *, expand: float, width: int, height: int) -> Box:
    """A detection -> the square crop around it, scaled about its centre and kept inside the image.

    The square's side is max(w, h) * expand. Where it would leave the image it is shrunk about the centre
    (the face stays centred, as in aligned training sets), but never below the detected box's own side
    (clipped to the image); past that it is moved inside instead. It is never larger than the image.

    Args:
      box: x, y, w, h of the detection in pixels (may reach outside the image).
      expand: scale of the side about the centre.
      width: image width.
      height: image height.

    Returns:
      x0, y0, x1, y1 with 0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height and x1 - x0 == y1 - y0.
    """
    x, y, w, h = box
    cx = min(max(x + w / 2, 0.0), width)
    cy = min(max(y + h / 2, 0.0), height)
    fits_image = min(width, height)
    centred = 2 * min(cx, width - cx, cy, height - cy)  # the largest square about (cx, cy) inside the image
    side = min(max(w, h) * expand, fits_image, max(centred, min(max(w, h), fits_image)))
    side = max(1, min(int(round(side)), fits_image))
    x0 = min(max(int(round(cx - side / 2)), 0), width - side)
    y0 = min(max(int(round(cy - side / 2)), 0), height - side)
    return x0, y0, x0 + side, y0 + side


def centre_square(width: int, height: int) -> Box:
    """The largest centred square of a width x height image, as x0, y0, x1, y1."""
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    return x0, y0, x0 + side, y0 + side


# ----------------------------------------------------------------------------------------------------------
# Detectors


def create_detector(name: str) -> Detector | None:
    """OpenCV's Haar cascade for `name` ("face" or "catface") as a Detector; None for "none".

    Raises:
      FlagError: naming --detector, when OpenCV or its Haar cascades are missing.
    """
    if name == "none":
        return None
    cv2 = _import_cv2()
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = os.path.join(folder, CASCADES[name])
    if not hasattr(cv2, "CascadeClassifier") or not os.path.isfile(path):
        raise FlagError("detector", f"OpenCV {cv2.__version__} has no Haar cascade {CASCADES[name]} "
                                    f"(OpenCV 5 dropped them); {INSTALL_HINT}, or use --detector none")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FlagError("detector", f"OpenCV could not load {path}; reinstall with {INSTALL_HINT}")

    def detect(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        found = cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=5)
        return [tuple(int(v) for v in b) for b in found]
    return detect


def _import_cv2() -> Any:
    """cv2, imported only when a detector is asked for: it is an optional extra."""
    try:
        import cv2
    except ImportError as e:
        raise FlagError("detector", f"needs OpenCV: {INSTALL_HINT}, or use --detector none") from e
    return cv2


# ----------------------------------------------------------------------------------------------------------
# Images


def read_image(path: str) -> Image.Image:
    """One image file -> an "L" or "RGB" Pillow image, prepared as training prepares it.

    Raises:
      Exception: whatever Pillow raises for an unreadable file; ValueError for an empty one.
    """
    if os.path.getsize(path) == 0:
        raise ValueError("empty file (0 bytes)")
    with Image.open(path) as img:
        img.seek(0)  # the first frame of a GIF
        return to_l_or_rgb(ImageOps.exif_transpose(img)).copy()


def crop_pixels(img: Image.Image, box: Box, *, size: int, grayscale: bool) -> np.ndarray:
    """The box of `img` resized to size x size: uint8 [size, size] if `grayscale`, else [size, size, 3]."""
    crop = img.convert("L" if grayscale else "RGB").crop(box)
    if crop.size != (size, size):
        crop = crop.resize((size, size), RESAMPLE)
    return np.asarray(crop, np.uint8)


def output_name(source: str, detection: int, fmt: str) -> str:
    """`a/b/c.jpg`, 0, "png" -> `a__b__c.jpg_0.png`: sub-folders flattened with "__", the extension kept."""
    return f"{source.replace(os.sep, '__').replace('/', '__')}_{detection}.{fmt}"


def _save_atomic(pixels: np.ndarray, path: str, fmt: str) -> None:
    """Writes a crop atomically (JPEG at quality 95)."""
    save_pil_atomic(Image.fromarray(pixels), path, format=FORMATS[fmt], **({"quality": 95} if fmt == "jpg" else {}))


# ----------------------------------------------------------------------------------------------------------
# Manifest


class Manifest:
    """manifest.csv: read on start (what is done, which crops exist), then appended to, file by file.

    Attributes:
      path: the CSV file.
      done: sources that have rows (finished by an earlier run or this one).
      kept: SHA-1 of a kept crop's pixels -> its row, to collapse exact duplicates.
    """

    def __init__(self, path: str):
        self.path = path
        self.done: set[str] = set()
        self.kept: dict[str, dict[str, str]] = {}
        rows = self._read() if os.path.exists(path) else None
        if rows is None:
            write_text_atomic(path, _csv_text([dict(zip(MANIFEST_FIELDS, MANIFEST_FIELDS))]), fsync=True)
        for row in rows or []:
            self._remember(row)
        self._file: TextIO = open(path, "a", newline="")

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Appends one source's rows in one write, then flushes and fsyncs, so they are done or not at all."""
        self._file.write(_csv_text(rows))
        self._file.flush()
        os.fsync(self._file.fileno())
        for row in rows:
            self._remember({k: str(v) for k, v in row.items()})

    def close(self) -> None:
        self._file.close()

    def _remember(self, row: dict[str, str]) -> None:
        self.done.add(row["source"])
        if row["status"] == KEPT:
            self.kept[row["sha1"]] = row

    def _read(self) -> list[dict[str, str]]:
        """The rows of an existing manifest; a half-written last source is dropped (and redone)."""
        with open(self.path, newline="") as f:
            text = f.read()
        header = ",".join(MANIFEST_FIELDS)
        if not text.startswith(header):
            raise DcganError(f"{self.path}: not a dcgan_tf.prepare manifest (expected the header {header}); "
                             "choose another --output")
        rows = list(csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1])))
        if not text.endswith("\n"):  # interrupted mid-write: the last source's rows may be incomplete
            last = rows[-1]["source"] if rows else None
            rows = [r for r in rows if r["source"] != last]
            write_text_atomic(self.path, _csv_text([dict(zip(MANIFEST_FIELDS, MANIFEST_FIELDS)), *rows]),
                              fsync=True)
        return rows


def _csv_text(rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, MANIFEST_FIELDS, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def _row(source: str, status: str, *, detection: int | str = "", box: Box | None = None, output: str = "",
         sha1: str = "", detail: str = "") -> dict[str, Any]:
    x0, y0, x1, y1 = box if box is not None else ("",) * 4
    return {"source": source, "detection": detection, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
            "output": output, "status": status, "sha1": sha1, "detail": detail}


# ----------------------------------------------------------------------------------------------------------
# One source file


def process_file(path: str, source: str, cfg: PrepareConfig, detector: Detector | None,
                 kept: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Reads one source, writes its crops and returns its manifest rows.

    Args:
      path: the file.
      source: its path relative to --input (manifest key and output name).
      cfg: the run's settings.
      detector: finds (x, y, w, h) boxes on the grayscale image; None: the largest centred square.
      kept: SHA-1 -> row of the crops kept so far; crops kept here are added.

    Returns:
      One row per detection, or one `dropped:unreadable` / `dropped:no_face` row.
    """
    try:
        img = read_image(path)
    except Exception as e:  # a bad file is skipped and recorded, never a crash
        return [_row(source, "dropped:unreadable", detail=skip_reason(e))]
    width, height = img.size
    if detector is None:
        boxes = [(centre_square(width, height), min(width, height))]
    else:
        found = sorted(detector(np.asarray(img.convert("L"))), key=lambda b: -b[2] * b[3])  # largest first
        boxes = [(expand_box(b, expand=cfg.expand, width=width, height=height), max(b[2], b[3])) for b in found]
    if not boxes:
        return [_row(source, "dropped:no_face")]
    return [_crop_row(img, source, i, box, side, cfg, kept) for i, (box, side) in enumerate(boxes)]


def _crop_row(img: Image.Image, source: str, i: int, box: Box, side: int, cfg: PrepareConfig,
              kept: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Writes one crop unless it is too small or an exact duplicate; returns its manifest row."""
    if side < cfg.min_size:
        return _row(source, "dropped:too_small", detection=i, box=box, detail=f"side {side} < --min_size")
    pixels = crop_pixels(img, box, size=cfg.size, grayscale=cfg.grayscale)
    sha1 = hashlib.sha1(pixels.tobytes()).hexdigest()
    if sha1 in kept:
        first = kept[sha1]
        return _row(source, "dropped:duplicate", detection=i, box=box, output=first["output"], sha1=sha1,
                    detail=f"duplicate of {first['source']} detection {first['detection']}")
    name = output_name(source, i, cfg.format)
    _save_atomic(pixels, os.path.join(cfg.output, name), cfg.format)
    row = _row(source, KEPT, detection=i, box=box, output=name, sha1=sha1)
    kept[sha1] = {k: str(v) for k, v in row.items()}
    return row


# ----------------------------------------------------------------------------------------------------------
# The folder


def prepare_folder(cfg: PrepareConfig, *, detector: Detector | None | str = "auto",
                   stream: TextIO | None = None) -> PrepareSummary:
    """Crops every image under `cfg.input` into `cfg.output`, resuming an earlier run into the same folder.

    Args:
      cfg: the settings (validated here).
      detector: "auto": `create_detector(cfg.detector)`; otherwise a Detector (or None for centre squares)
        used instead, e.g. in tests.
      stream: where the progress bar goes (default stdout).

    Returns:
      What was read, found, written and skipped.

    Raises:
      FlagError: naming --input, --output, --detector or another flag the user can fix.
      DcganError: the output folder holds a foreign manifest.csv.
    """
    cfg.validate()
    sources = find_sources(cfg.input, cfg.input_fname_pattern)
    _check_output(cfg)
    if detector == "auto":
        detector = create_detector(cfg.detector)
    os.makedirs(cfg.output, exist_ok=True)
    _check_settings(cfg)
    manifest = Manifest(os.path.join(cfg.output, MANIFEST))
    summary = PrepareSummary(cfg.output, files=len(sources), detector=cfg.detector)
    try:
        _process_all(sources, cfg, detector, manifest, summary, stream)
    finally:
        manifest.close()
    return summary


def _process_all(sources: list[str], cfg: PrepareConfig, detector: Detector | None, manifest: Manifest,
                 summary: PrepareSummary, stream: TextIO | None) -> None:
    """The loop over source files: skip the done ones, process, record, report progress."""
    bar = ProgressBar(len(sources), prefix="prepare ", stream=stream)
    every = max(1, len(sources) // 50)
    for n, source in enumerate(sources, 1):
        if source in manifest.done:
            summary.skipped["already_done"] += 1
        else:
            rows = process_file(os.path.join(cfg.input, source), source, cfg, detector, manifest.kept)
            manifest.append(rows)
            _count(rows, summary)
        if n % every == 0 or n == len(sources):
            bar.update(n, {"found": summary.found, "written": summary.written})


def _count(rows: list[dict[str, Any]], summary: PrepareSummary) -> None:
    summary.read += 1
    summary.found += sum(r["detection"] != "" for r in rows)
    for r in rows:
        if r["status"] == KEPT:
            summary.written += 1
        else:
            summary.skipped[r["status"].removeprefix("dropped:")] += 1


def find_sources(folder: str, pattern: str) -> list[str]:
    """Paths relative to `folder` of the files matching any comma-separated pattern, sorted.

    Raises:
      FlagError: naming --input when the folder is missing, empty or has no matching file.
    """
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        raise FlagError("input", f"{folder} {what}; point --input at the folder of images")
    paths = sorted({p for pat in _patterns(pattern) for p in list_image_files(folder, pat)})
    if paths:
        return [os.path.relpath(p, folder) for p in paths]
    exts = collections.Counter(os.path.splitext(name)[1].lower() or name
                               for _, _, names in os.walk(folder, followlinks=True) for name in names)
    if not exts:
        raise FlagError("input", f"the folder {folder} is empty (sub-folders too); point --input at the images")
    held = ", ".join(f"{count} {ext}" for ext, count in exts.most_common(3))
    raise FlagError("input", f"no file in {folder} (or its sub-folders) matches {pattern!r}; it holds {held}; "
                             "set --input_fname_pattern")


def _patterns(pattern: str) -> list[str]:
    return [p.strip() for p in pattern.split(",") if p.strip()]


def _check_output(cfg: PrepareConfig) -> None:
    """--output must not be --input or lie inside it: the input folder is never written to."""
    inp, out = os.path.realpath(cfg.input), os.path.realpath(cfg.output)
    if out == inp or out.startswith(inp.rstrip(os.sep) + os.sep):
        raise FlagError("output", f"{cfg.output} is inside --input {cfg.input} (or the same folder); "
                                  "choose a folder outside it, e.g. a sibling")
    if os.path.exists(cfg.output) and not os.path.isdir(cfg.output):
        raise FlagError("output", f"{cfg.output} is a file; choose a folder")


def _check_settings(cfg: PrepareConfig) -> None:
    """Writes prepare.json on the first run; a later run into the same --output must use the same settings."""
    path = os.path.join(cfg.output, SETTINGS)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k in RESUME_KEYS}
    settings["input"] = os.path.realpath(cfg.input)
    if not os.path.exists(path):
        write_json_atomic(path, settings)
        return
    with open(path) as f:
        saved = json.load(f)
    for key in RESUME_KEYS:
        if saved.get(key) != settings[key]:
            raise FlagError(key, f"is {settings[key]!r} but {cfg.output} was made with {saved.get(key)!r}; "
                                 "use the same settings to resume, or a new --output")


# ----------------------------------------------------------------------------------------------------------
# Command line


def define_program_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The program's flags, one per PrepareConfig field. Only the program defines them, so importing this module
    adds no flags to main.py's (which share a name)."""
    define_flags(PrepareConfig, flag_values=flag_values)


def config_from_flags(values: flags.FlagValues = flags.FLAGS) -> PrepareConfig:
    """One validated PrepareConfig from the flags."""
    return PrepareConfig(**flag_values(PrepareConfig, flag_values=values)[0]).validate()


def run(_argv: list[str]) -> int:
    """Prepares the folder named by the flags and prints a summary line."""
    summary = prepare_folder(config_from_flags())
    print(summary.line())
    print(f"manifest: {os.path.join(summary.output, MANIFEST)}")
    return 0


def main(argv: list[str] | None = None) -> None:
    """The program (and the console script dcgan-prepare): makes the flags, parses `argv` (default sys.argv) and
    runs; a user error (a leftover word too) is one line and exit code 2."""
    define_program_flags()
    start(lambda words: exit_with(run, words, command_line=argv), argv, hide_logs=False)  # no TensorFlow here


if __name__ == "__main__":
    main(sys.argv)
