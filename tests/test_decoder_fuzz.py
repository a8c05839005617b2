"""Seeded fuzzing of the image loader: every file either loads as a proper image or is skipped with a reason.

The cases are hostile or odd files: truncations at random cut points, random byte changes, random bytes
(alone or behind a real magic number), wrong extensions, zero-byte files, headers that declare huge sizes
(decompression bombs), and the modes Pillow hands back for real-world files (16-bit, CMYK, animated GIF,
EXIF-rotated, palette with transparency, LA, 1-bit). `load_image` must return float32 [H, W, C] in [-1, 1]
or raise a DcganError naming the file, and `load_train_data` over all of them must skip exactly the files
`load_image` rejects and count them in DataInfo.skipped.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import resource
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dcgan_tf import data, decode
from dcgan_tf.config import TrainConfig
from dcgan_tf.errors import DcganError

NUM_CASES = 300
SIZE = 8  # output height and width, unless a case needs another


@dataclasses.dataclass
class Case:
    """One file to feed the loader, and what must come out."""

    kind: str
    ext: str
    payload: bytes
    expect: str  # "load", "skip" or "either"
    c_dim: int = 3
    size: tuple[int, int] = (SIZE, SIZE)  # (height, width) out
    reference: np.ndarray | None = None  # float32 [H, W, C] a load must equal (within atol)
    atol: float = 0.0
    reason: str = ""  # a substring the skip reason must hold
    original: bytes = b""  # for a truncation: the whole file, whose pixels a successful load must give


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def scaled(pixels: np.ndarray) -> np.ndarray:
    """uint8-valued [H, W] or [H, W, C] -> float32 [H, W, C] in [-1, 1], as the loader scales."""
    pixels = np.asarray(pixels, np.float32)
    return (pixels if pixels.ndim == 3 else pixels[..., None]) / np.float32(127.5) - np.float32(1)


def blocks(rng, rows: int, cols: int, channels: int = 3) -> np.ndarray:
    """uint8 [8*rows, 8*cols, channels] of solid 8x8 blocks of 0 or 255 (JPEG keeps them nearly exact)."""
    colours = rng.choice([0, 255], (rows, cols, channels)).astype(np.uint8)
    return colours.repeat(8, axis=0).repeat(8, axis=1)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# ----------------------------------------------------------------------------------------------------------
# Case builders: each takes the rng and returns a Case


def good_png(rng) -> Case:
    pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return Case("good_png", "png", encode(Image.fromarray(pixels), "PNG"), "load", reference=scaled(pixels))


def good_jpeg(rng) -> Case:
    pixels = blocks(rng, 1, 1)
    payload = encode(Image.fromarray(pixels), "JPEG", quality=100, subsampling=0)
    return Case("good_jpeg", "jpg", payload, "load", reference=scaled(pixels), atol=0.05)


def random_original(rng) -> tuple[str, bytes]:
    """A valid PNG, JPEG or GIF of a random size, for truncation and mutation."""
    height, width = rng.integers(4, 40, 2)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    fmt = rng.choice(["png", "jpg", "gif"])
    return fmt, encode(Image.fromarray(pixels), {"png": "PNG", "jpg": "JPEG", "gif": "GIF"}[fmt])


def truncated(rng) -> Case:
    ext, payload = random_original(rng)
    near_end = rng.random() < 0.3  # also cut inside the trailer (IEND, EOI), where pixels may survive
    cut = len(payload) - int(rng.integers(1, 17)) if near_end else int(rng.integers(0, len(payload)))
    return Case("truncated", ext, payload[:cut], "either", c_dim=int(rng.choice([1, 3])), original=payload)


def mutated(rng) -> Case:
    ext, payload = random_original(rng)
    changed = bytearray(payload)
    for _ in range(int(rng.integers(1, 5))):
        changed[int(rng.integers(0, len(changed)))] = int(rng.integers(0, 256))
    return Case("mutated", ext, bytes(changed), "either", c_dim=int(rng.choice([1, 3])))


def random_bytes(rng) -> Case:
    magic = rng.choice([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a"])
    payload = bytes(magic) + rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes()
    return Case("random_bytes", str(rng.choice(["png", "jpg", "jpeg", "gif"])), payload, "skip",
                reason="unreadable")


def wrong_extension(rng) -> Case:
    pixels = blocks(rng, 1, 1)
    if rng.random() < 0.5:  # a PNG named .jpg
        return Case("png_as_jpg", "jpg", encode(Image.fromarray(pixels), "PNG"), "load", reference=scaled(pixels))
    payload = encode(Image.fromarray(pixels), "JPEG", quality=100, subsampling=0)
    return Case("jpg_as_png", "png", payload, "load", reference=scaled(pixels), atol=0.05)


def zero_bytes(rng) -> Case:
    return Case("zero_bytes", str(rng.choice(["png", "jpg", "gif"])), b"", "skip", reason="empty file")


def huge_dimensions(rng) -> Case:
    """A header declaring far more pixels than Pillow's decompression-bomb limit allows, with no real data."""
    kind = rng.choice(["png", "jpg", "gif"])
    if kind == "png":
        side = int(rng.integers(20_000, 100_001))
        payload = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                   + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))
    elif kind == "jpg":
        payload = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
        sof = payload.index(b"\xff\xc0")  # baseline start of frame: length, precision, height, width
        payload[sof + 5:sof + 9] = struct.pack(">HH", 65_500, 65_500)
    else:
        payload = bytearray(encode(Image.new("P", (8, 8)), "GIF"))
        payload[6:10] = struct.pack("<HH", 65_535, 65_535)  # the logical screen size
    return Case("huge_dimensions", str(kind), bytes(payload), "skip", reason="DecompressionBomb")


def sixteen_bit(rng) -> Case:
    values = rng.integers(0, 65536, (SIZE, SIZE), dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode.startswith("I;16")
    return Case("i16_png", "png", encode(img, "PNG"), "load", c_dim=1,
                reference=scaled(values / 65535 * 255), atol=1 / 127.5)


def cmyk_jpeg(rng) -> Case:
    cmy = blocks(rng, 1, 1)
    cmyk = np.concatenate([cmy, np.zeros_like(cmy[..., :1])], axis=-1)  # K = 0: RGB = 255 - CMY
    payload = encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=100)
    return Case("cmyk_jpeg", "jpg", payload, "load", reference=scaled(255 - cmy), atol=0.1)


def animated_gif(rng) -> Case:
    colours = [tuple(int(c) for c in rng.choice([0, 255], 3)) for _ in range(3)]
    frames = [Image.new("RGB", (SIZE, SIZE), c) for c in colours]
    payload = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    first = np.broadcast_to(np.array(colours[0], np.uint8), (SIZE, SIZE, 3))
    return Case("animated_gif", "gif", payload, "load", reference=scaled(first))


EXIF_ORIENTATIONS = {  # what a viewer shows for each EXIF orientation value, as numpy on [H, W, C]
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def exif_rotated_jpeg(rng, orientation: int | None = None) -> Case:
    corners = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)], np.uint8)
    colours = corners[rng.permutation(8)[:6]].reshape(2, 3, 3)  # six different colours: no symmetry
    pixels = colours.repeat(8, axis=0).repeat(8, axis=1)  # 16 high, 24 wide: every orientation differs
    orientation = orientation or int(rng.integers(1, 9))
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = encode(Image.fromarray(pixels), "JPEG", quality=100, subsampling=0, exif=exif)
    shown = EXIF_ORIENTATIONS[orientation](pixels)
    return Case(f"exif_{orientation}_jpeg", "jpg", payload, "load", size=shown.shape[:2],
                reference=scaled(shown), atol=0.05)


def palette_transparent_png(rng) -> Case:
    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    index = rng.integers(0, 4, (SIZE, SIZE), dtype=np.uint8)
    img = Image.fromarray(index, "P")
    img.putpalette(palette.ravel().tolist())
    shown = np.where((index == 0)[..., None], np.uint8(255), palette[index])  # index 0 transparent: white
    return Case("palette_transparent_png", "png", encode(img, "PNG", transparency=0), "load",
                reference=scaled(shown))


def la_png(rng) -> Case:
    la = rng.integers(0, 256, (SIZE, SIZE, 2), dtype=np.uint8)
    alpha = la[..., 1] / 255
    shown = la[..., 0] * alpha + 255 * (1 - alpha)  # composited on white
    return Case("la_png", "png", encode(Image.fromarray(la, "LA"), "PNG"), "load", c_dim=1,
                reference=scaled(shown), atol=1.5 / 127.5)


def one_bit_png(rng) -> Case:
    bits = rng.random((SIZE, SIZE)) < 0.5
    return Case("one_bit_png", "png", encode(Image.fromarray(bits), "PNG"), "load", c_dim=1,
                reference=scaled(bits * 255.0))


BUILDERS = (good_png, good_jpeg, truncated, truncated, mutated, mutated, random_bytes, wrong_extension,
            zero_bytes, huge_dimensions, sixteen_bit, cmyk_jpeg, animated_gif, exif_rotated_jpeg,
            palette_transparent_png, la_png, one_bit_png)


def make_cases(seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    return [BUILDERS[i % len(BUILDERS)](rng) for i in range(NUM_CASES)]


# ----------------------------------------------------------------------------------------------------------
# Checks


def load(path, case: Case) -> np.ndarray:
    return decode.load_image(str(path), c_dim=case.c_dim, output_height=case.size[0], output_width=case.size[1])


def expected_pixels(case: Case, tmp_path) -> np.ndarray | None:
    """The reference a load must equal; a truncated file that loads must give its whole original's pixels."""
    if case.original:
        original = tmp_path / f"original.{case.ext}"
        original.write_bytes(case.original)
        return load(original, case)
    return case.reference


def check_one(path, case: Case, tmp_path) -> str:
    """Loads one file and checks the outcome against the case. Returns "load" or "skip"."""
    try:
        x = load(path, case)
    except DcganError as e:  # any other exception type fails the test
        message = str(e)
        assert message.startswith(f"{path}: "), message
        assert case.expect != "load", f"{case.kind}: a good file was rejected: {message}"
        assert case.reason in message, f"{case.kind}: {message}"
        return "skip"
    assert case.expect != "skip", f"{case.kind}: a bad file was loaded"
    assert x.shape == (*case.size, case.c_dim) and x.dtype == np.float32, case.kind
    assert np.isfinite(x).all() and x.min() >= -1 and x.max() <= 1, case.kind
    reference = expected_pixels(case, tmp_path)
    if reference is not None:
        np.testing.assert_allclose(x, reference, atol=case.atol + 1e-6, err_msg=case.kind)
    return "load"


@dataclasses.dataclass
class FuzzRun:
    """Every case written to one folder, and what `load_image` did with each file."""

    folder: pathlib.Path
    outcomes: dict[str, str]  # path -> "load" or "skip"
    kinds: dict[str, set[str]]  # case kind -> the outcomes it produced
    failures: list[str]  # one line per file whose outcome broke its case's rule
    peak_growth_mib: float  # how much the process's peak memory grew while loading them


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory) -> FuzzRun:
    folder = tmp_path_factory.mktemp("fuzz") / "mixed"
    folder.mkdir()
    scratch = tmp_path_factory.mktemp("scratch")
    run = FuzzRun(folder, {}, {}, [], 0.0)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for i, case in enumerate(make_cases()):
        path = folder / f"{i:03d}_{case.kind}.{case.ext}"
        path.write_bytes(case.payload)
        try:
            outcome = check_one(path, case, scratch)
        except Exception as e:  # an assertion, or an exception other than DcganError: report them all
            outcome = "failed"
            run.failures.append(f"{path.name}: {type(e).__name__}: {str(e).strip()[:300]}")
        run.outcomes[str(path)] = outcome
        run.kinds.setdefault(case.kind, set()).add(outcome)
    run.peak_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    return run


# ----------------------------------------------------------------------------------------------------------
# Tests


def test_each_file_loads_correctly_or_is_skipped_naming_it(fuzz_run):
    assert not fuzz_run.failures, "\n".join(fuzz_run.failures)
    assert len(fuzz_run.outcomes) == NUM_CASES
    for kind in ("truncated", "mutated"):  # the fuzz reached both outcomes
        assert fuzz_run.kinds[kind] == {"load", "skip"}, kind
    assert fuzz_run.kinds["huge_dimensions"] == {"skip"}
    assert fuzz_run.peak_growth_mib < 256, f"peak memory grew by {fuzz_run.peak_growth_mib:.0f} MiB"  # no bomb


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(orientation, tmp_path):
    case = exif_rotated_jpeg(np.random.default_rng(orientation), orientation)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(case.payload)
    assert check_one(path, case, tmp_path) == "load"


def test_folder_of_all_cases_skips_and_counts_exactly_the_rejected_files(fuzz_run):
    folder, outcomes = fuzz_run.folder, fuzz_run.outcomes
    cfg = TrainConfig(dataset=folder.name, data_dir=str(folder.parent), input_fname_pattern="*",
                      output_height=SIZE, batch_size=4)
    info = data.load_train_data(cfg)
    rejected = {p for p, outcome in outcomes.items() if outcome == "skip"}
    assert {p for p, _ in info.skipped} == rejected and len(info.skipped) == len(rejected)
    assert all(why for _, why in info.skipped)
    assert info.num_examples == NUM_CASES - len(rejected) and info.c_dim == 3
    images = np.concatenate([x for x, _ in info.dataset.as_numpy_iterator()])
    assert len(images) == info.steps_per_epoch * 4
    assert np.isfinite(images).all() and images.min() >= -1 and images.max() <= 1


def test_streamed_folder_of_all_cases_never_raises(fuzz_run, monkeypatch):
    folder, outcomes = fuzz_run.folder, fuzz_run.outcomes
    monkeypatch.setattr(data, "MAX_CACHE_BYTES", 0)  # stream: headers checked up front, pixels per epoch
    cfg = TrainConfig(dataset=folder.name, data_dir=str(folder.parent), input_fname_pattern="*",
                      output_height=SIZE, batch_size=4)
    info = data.load_train_data(cfg)
    rejected = {p for p, outcome in outcomes.items() if outcome == "skip"}
    header_rejected = {p for p, _ in info.skipped}
    assert header_rejected <= rejected  # a header that looks bad never hides a good file
    assert {p for p in rejected if "zero_bytes" in p or "huge_dimensions" in p} <= header_rejected
    images = np.concatenate([x for x, _ in info.dataset.as_numpy_iterator()])
    loadable = NUM_CASES - len(rejected)
    assert loadable // 4 * 4 == len(images)  # files failing to decode mid-epoch are dropped, not fatal
    assert np.isfinite(images).all() and images.min() >= -1 and images.max() <= 1
