"""Tests of dcgan_tf.data on tiny images in tmp_path, the repo's Fashion-MNIST and (when present) ../shared/data."""

from __future__ import annotations

import logging
import math
import types

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_DATA
from PIL import Image

from dcgan_tf import data, datasets, decode
from dcgan_tf.config import TrainConfig
from dcgan_tf.errors import DcganError, FlagError


def tiny_cfg(folder, **overrides) -> TrainConfig:
    """Settings for a tiny folder made by the conftest fixtures: 8x8 output, batches of 4."""
    kw = dict(dataset=folder.name, data_dir=str(folder.parent), input_fname_pattern="*.png",
              output_height=8, batch_size=4)
    kw.update(overrides)
    return TrainConfig(**kw)


def one_epoch(info: data.DataInfo) -> tuple[np.ndarray, np.ndarray]:
    batches = list(info.dataset.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def save(img: Image.Image, path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return str(path)


# ----------------------------------------------------------------------------------------------------------
# The pipeline


def test_batches_have_static_shape_dtype_and_range(tiny_image_folder):
    info = data.load_train_data(tiny_cfg(tiny_image_folder, batch_size=5))
    assert (info.num_examples, info.steps_per_epoch, info.c_dim, info.y_dim) == (24, 4, 3, 0)
    images_spec, labels_spec = info.dataset.element_spec
    assert images_spec.shape.as_list() == [5, 8, 8, 3] and images_spec.dtype == tf.float32
    assert labels_spec.shape.as_list() == [5, 0] and labels_spec.dtype == tf.float32
    batches = list(info.dataset.as_numpy_iterator())
    assert len(batches) == info.steps_per_epoch  # 24 // 5: the remainder is dropped
    images = np.concatenate([b[0] for b in batches])
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() < -0.5 and images.max() > 0.5
    assert info.skipped == []


def test_training_prepares_files_exactly_as_load_image(make_image_folder):
    folder = make_image_folder(n=4, size=20)
    cfg = tiny_cfg(folder, crop=True, input_height=12, input_width=10, output_height=6, output_width=5)
    images, _ = one_epoch(data.load_train_data(cfg))
    singles = [decode.load_image(str(p), c_dim=3, output_height=6, output_width=5, crop=True, input_height=12,
                               input_width=10) for p in sorted(folder.iterdir())]
    for image in images:  # each batch image is exactly one of the files
        assert sum(np.array_equal(image, single) for single in singles) == 1


def test_epochs_reshuffle_the_same_images_and_seed_reproduces(make_image_folder):
    folder = make_image_folder(n=12)
    for i, path in enumerate(sorted(folder.iterdir())):  # image i is uniformly 20 * i
        Image.new("L", (16, 16), 20 * i).save(path)
    info = data.load_train_data(tiny_cfg(folder, seed=3))
    ids = lambda images: [round((x[0, 0, 0] + 1) * 127.5 / 20) for x in images]
    first, second = ids(one_epoch(info)[0]), ids(one_epoch(info)[0])
    assert first != second and sorted(first) == sorted(second) == list(range(12))
    assert ids(one_epoch(data.load_train_data(tiny_cfg(folder, seed=3)))[0]) == first


def test_train_size_caps_the_epoch(tiny_image_folder):
    info = data.load_train_data(tiny_cfg(tiny_image_folder, train_size=10))
    assert (info.num_examples, info.steps_per_epoch) == (10, 2)
    assert len(list(info.dataset)) == 2
    assert data.load_train_data(tiny_cfg(tiny_image_folder, train_size=math.inf)).num_examples == 24


def test_flip_mirrors_some_images_and_leaves_others(make_image_folder):
    folder = make_image_folder(n=32, mode="L")
    pattern = np.zeros((8, 8), np.uint8)
    pattern[:, :3] = 255  # white on the left only
    for path in folder.iterdir():
        Image.fromarray(pattern).save(path)
    images, _ = one_epoch(data.load_train_data(tiny_cfg(folder, flip=True, batch_size=8)))
    original = pattern[..., None] / 127.5 - 1
    flipped = [np.array_equal(x, original[:, ::-1]) for x in images]
    kept = [np.array_equal(x, original) for x in images]
    assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < len(images)


def test_streaming_path_matches_in_memory_and_skips_bad_files(tiny_image_folder, monkeypatch):
    (tiny_image_folder / "empty.png").write_bytes(b"")
    (tiny_image_folder / "garbage.png").write_bytes(b"not an image at all")
    monkeypatch.setattr(data, "MAX_CACHE_BYTES", 0)  # force streaming
    info = data.load_train_data(tiny_cfg(tiny_image_folder))
    assert (info.num_examples, info.steps_per_epoch, len(info.skipped)) == (24, 6, 2)
    assert info.dataset.element_spec[0].shape.as_list() == [4, 8, 8, 3]
    streamed, _ = one_epoch(info)
    monkeypatch.setattr(data, "MAX_CACHE_BYTES", 4 << 30)
    cached, _ = one_epoch(data.load_train_data(tiny_cfg(tiny_image_folder)))
    key = lambda images: sorted(x.tobytes() for x in images)
    assert key(streamed) == key(cached)


# ----------------------------------------------------------------------------------------------------------
# Decoding single files


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black ...
    rgba[0, 1] = (255, 0, 0, 255)  # ... but one opaque red pixel
    rgba[0, 2] = (0, 0, 0, 128)  # and one half-transparent black pixel
    x = decode.load_image(save(Image.fromarray(rgba), tmp_path / "a.png"), c_dim=3, output_height=4,
                        output_width=4)
    np.testing.assert_array_equal(x[0, 0], [1, 1, 1])
    np.testing.assert_array_equal(x[0, 1], [1, -1, -1])
    np.testing.assert_allclose(x[0, 2], [0, 0, 0], atol=0.01)
    la = Image.fromarray(np.zeros((4, 4, 2), np.uint8))  # fully transparent black, mode LA
    assert la.mode == "LA"
    np.testing.assert_array_equal(decode.load_image(save(la, tmp_path / "la.png"), c_dim=1, output_height=4,
                                                  output_width=4), np.ones((4, 4, 1)))


def test_palette_images_with_and_without_transparency(tmp_path):
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)  # 0 black, 1 green, 2 blue
    img.putpixel((0, 0), 2)
    x = decode.load_image(save(img, tmp_path / "p.png"), c_dim=3, output_height=4, output_width=4)
    np.testing.assert_array_equal(x[0, 0], [-1, -1, 1])
    np.testing.assert_array_equal(x[1, 1], [-1, 1, -1])
    x = decode.load_image(save(img, tmp_path / "pt.png", transparency=1), c_dim=3, output_height=4,
                        output_width=4)
    np.testing.assert_array_equal(x[1, 1], [1, 1, 1])  # transparent index -> white
    np.testing.assert_array_equal(x[0, 0], [-1, -1, 1])


def test_16bit_grayscale_is_scaled_to_8bit(tmp_path):
    pixels = np.array([[0, 65535], [128 * 257, 65535]], np.uint16)
    img = Image.fromarray(pixels)
    assert img.mode.startswith("I;16")
    path = save(img, tmp_path / "g16.png")
    x = decode.load_image(path, c_dim=1, output_height=2, output_width=2)
    np.testing.assert_allclose(x[..., 0], [[-1, 1], [128 / 127.5 - 1, 1]], atol=1e-6)
    assert decode.detect_channels([path]) == 1


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=100)
    assert Image.open(path).mode == "CMYK"
    x = decode.load_image(path, c_dim=3, output_height=8, output_width=8)
    np.testing.assert_allclose(x[4, 4], [1, -1, -1], atol=0.05)  # red


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((8, 16, 3), np.uint8)  # 16 wide, 8 high: red left half, blue right half
    pixels[:, :8, 0] = 255
    pixels[:, 8:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = save(Image.fromarray(pixels), tmp_path / "rotated.jpg", exif=exif, quality=100)
    x = decode.load_image(path, c_dim=3, output_height=16, output_width=8)  # now 8 wide, 16 high
    np.testing.assert_allclose(x[3, 4], [1, -1, -1], atol=0.1)  # left became the top
    np.testing.assert_allclose(x[12, 4], [-1, -1, 1], atol=0.1)


def test_gif_uses_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    path = save(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert Image.open(path).n_frames == 2
    x = decode.load_image(path, c_dim=3, output_height=4, output_width=4)
    np.testing.assert_array_equal(x[2, 2], [1, -1, -1])


def test_crop_takes_the_centre(tmp_path):
    pixels = (np.arange(10)[:, None] * 14 + np.arange(14)[None, :]).astype(np.uint8)  # 10 high, 14 wide
    path = save(Image.fromarray(pixels), tmp_path / "ramp.png")
    x = decode.load_image(path, c_dim=1, output_height=4, output_width=6, crop=True, input_height=4,
                        input_width=6)
    np.testing.assert_array_equal(x[..., 0], pixels[3:7, 4:10] / np.float32(127.5) - 1)
    border = np.zeros((12, 12), np.uint8)
    border[3:9, 3:9] = 255
    x = decode.load_image(save(Image.fromarray(border), tmp_path / "box.png"), c_dim=1, output_height=3,
                        output_width=3, crop=True, input_height=6)  # crop 6x6, then resize
    np.testing.assert_array_equal(x, np.ones((3, 3, 1)))


def test_load_image_names_the_unreadable_file(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DcganError, match="broken.jpg"):
        decode.load_image(str(path), c_dim=3, output_height=8, output_width=8)


# ----------------------------------------------------------------------------------------------------------
# Folders


def test_list_image_files_recurses_sorts_and_matches_the_pattern(tmp_path):
    for rel in ("b.png", "a/z.PNG", "a/deep/c.png", "notes.txt", "a/x.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = decode.list_image_files(str(tmp_path), "*.png")
    assert [p[len(str(tmp_path)) + 1:] for p in found] == ["a/deep/c.png", "a/z.PNG", "b.png"]


def test_channels_grayscale_folder_is_1_and_mixed_is_3(make_image_folder):
    folder = make_image_folder(n=8, mode="L")
    save(Image.fromarray(np.zeros((6, 6, 2), np.uint8)), folder / "sub" / "la.png")  # LA counts as gray
    info = data.load_train_data(tiny_cfg(folder))
    assert info.c_dim == 1 and info.num_examples == 9
    assert info.dataset.element_spec[0].shape.as_list() == [4, 8, 8, 1]
    Image.new("RGB", (6, 6), (255, 0, 0)).save(folder / "sub" / "red.png")
    assert decode.detect_channels(decode.list_image_files(str(folder), "*.png")) == 3
    assert data.load_train_data(tiny_cfg(folder)).c_dim == 3


def test_corrupt_zero_byte_and_truncated_files_are_skipped_and_counted(tiny_image_folder, caplog):
    (tiny_image_folder / "empty.png").write_bytes(b"")
    (tiny_image_folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = (tiny_image_folder / "000.png").read_bytes()
    (tiny_image_folder / "nested").mkdir()
    (tiny_image_folder / "nested" / "truncated.png").write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING):
        info = data.load_train_data(tiny_cfg(tiny_image_folder))
    assert info.num_examples == 24
    assert sorted(p.rsplit("/", 1)[1] for p, _ in info.skipped) == ["empty.png", "garbage.png",
                                                                    "truncated.png"]
    assert "empty file" in dict(info.skipped)[str(tiny_image_folder / "empty.png")]
    assert any("Skipped 3 of 27 files" in r.getMessage() for r in caplog.records)


def test_images_smaller_than_the_crop_are_skipped_with_a_reason(make_image_folder):
    folder = make_image_folder(n=8, size=16)
    Image.new("RGB", (10, 10)).save(folder / "small.png")
    info = data.load_train_data(tiny_cfg(folder, crop=True, input_height=12))
    assert info.num_examples == 8
    assert info.skipped == [(str(folder / "small.png"), "smaller than the crop 12x12 (the image is 10x10)")]


# ----------------------------------------------------------------------------------------------------------
# Errors a user can cause


def test_error_for_missing_folder_and_unknown_dataset(tmp_path):
    with pytest.raises(FlagError) as e:
        data.load_train_data(TrainConfig(dataset="no_such_dataset_xyz", data_dir=str(tmp_path)))
    assert e.value.flag == "dataset" and str(tmp_path / "no_such_dataset_xyz") in str(e.value)
    assert "--data_dir" in str(e.value) and "\n" not in str(e.value)


def test_error_for_empty_folder(tmp_path):
    (tmp_path / "data" / "empty").mkdir(parents=True)
    with pytest.raises(FlagError, match="empty") as e:
        data.load_train_data(tiny_cfg(tmp_path / "data" / "empty"))
    assert e.value.flag == "dataset" and str(tmp_path / "data" / "empty") in str(e.value)


def test_error_when_no_file_matches_the_pattern(tiny_image_folder):
    with pytest.raises(FlagError, match=r"\*\.jpg") as e:
        data.load_train_data(tiny_cfg(tiny_image_folder, input_fname_pattern="*.jpg"))
    assert e.value.flag == "input_fname_pattern"
    assert str(tiny_image_folder) in str(e.value) and "24 .png" in str(e.value)


def test_error_when_fewer_images_than_one_batch(make_image_folder):
    folder = make_image_folder(n=3)
    with pytest.raises(FlagError, match="only 3 usable images") as e:
        data.load_train_data(tiny_cfg(folder, batch_size=4))
    assert e.value.flag == "batch_size" and str(folder) in str(e.value)


def test_error_when_every_image_is_smaller_than_the_crop(tiny_image_folder):
    with pytest.raises(FlagError, match="--input_width") as e:
        data.load_train_data(tiny_cfg(tiny_image_folder, crop=True, input_height=32, input_width=20))
    assert e.value.flag == "input_height" and "32x20" in str(e.value)


def test_error_when_nothing_is_readable(tmp_path):
    folder = tmp_path / "data" / "bad"
    folder.mkdir(parents=True)
    for i in range(5):
        (folder / f"{i}.png").write_bytes(b"junk")
    with pytest.raises(DcganError, match="none of the 5 files"):
        data.load_train_data(tiny_cfg(folder))


def test_error_for_conditional_on_unlabelled_folder(tiny_image_folder):
    with pytest.raises(FlagError) as e:
        data.load_train_data(tiny_cfg(tiny_image_folder, conditional=True))
    assert e.value.flag == "conditional"


# ----------------------------------------------------------------------------------------------------------
# idx files and TFDS


def test_idx_round_trip_splits_and_one_hot(idx_folder, tmp_path):
    data_dir = str(tmp_path / "data")
    assert datasets.find_idx_folder("mnist", data_dir) == str(idx_folder)
    images, labels = datasets.load_idx("mnist", data_dir, "all")
    assert images.shape == (10, 28, 28, 1) and images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [0, 1, 2, 3, 4, 5, 9, 8, 7, 6])  # train, then test
    np.testing.assert_array_equal(images[:, 5, 5, 0], 20 * labels)
    assert datasets.load_idx("mnist", data_dir, "train")[0].shape[0] == 6
    np.testing.assert_array_equal(datasets.load_idx("mnist", data_dir, "test")[1], [9, 8, 7, 6])

    info = data.load_train_data(TrainConfig(dataset="mnist", data_dir=data_dir, output_height=28,
                                            batch_size=5))
    assert (info.num_examples, info.steps_per_epoch, info.c_dim, info.y_dim) == (10, 2, 1, 10)
    x, y = one_epoch(info)
    assert y.shape == (10, 10) and np.all(y.sum(axis=1) == 1)
    np.testing.assert_allclose((x[:, 0, 0, 0] + 1) * 127.5, 20 * y.argmax(axis=1), atol=1e-3)  # aligned


def test_idx_split_train_keeps_the_test_split_out(idx_folder, tmp_path):
    cfg = TrainConfig(dataset="mnist", data_dir=str(tmp_path / "data"), output_height=28, batch_size=2,
                      idx_split="train")
    info = data.load_train_data(cfg)
    assert info.num_examples == 6
    _, y = one_epoch(info)
    assert set(y.argmax(axis=1)) <= {0, 1, 2, 3, 4, 5}  # the test images have labels 9, 8, 7, 6


def test_idx_resized_and_unconditional(idx_folder):
    info = data.load_train_data(TrainConfig(dataset="mnist", data_dir=str(idx_folder.parent), output_height=8,
                                            batch_size=5, conditional=False))
    assert info.y_dim == 0 and info.dataset.element_spec[0].shape.as_list() == [5, 8, 8, 1]
    assert info.dataset.element_spec[1].shape.as_list() == [5, 0]


def test_a_missing_folder_says_how_to_make_one(tmp_path):
    """carpedm20's `--dataset faces --train` with no data/faces: one line naming the folder and prepare."""
    cfg = TrainConfig(dataset="faces", data_dir=str(tmp_path / "data"), output_height=8)
    with pytest.raises(FlagError) as e:
        data.load_train_data(cfg)
    folder = tmp_path / "data" / "faces"
    message = str(e.value)
    assert message.startswith(f"--dataset: no folder {folder}") and "\n" not in message
    assert message.endswith(f"`python -m dcgan_tf.prepare --input raw/ --output {folder}`")


def test_tfds_dataset_is_used_when_no_folder_exists(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    examples = {"image": rng.integers(0, 256, (20, 12, 12, 1), dtype=np.uint8),
                "label": np.arange(20, dtype=np.int64) % 10}
    info = types.SimpleNamespace(
        features={"image": types.SimpleNamespace(shape=(12, 12, 1)),
                  "label": types.SimpleNamespace(num_classes=10)},
        splits={"train": types.SimpleNamespace(num_examples=20)})
    calls = []

    def fake_load(name, split, searched, hint=""):
        calls.append((name, split))
        return tf.data.Dataset.from_tensor_slices(examples), info

    monkeypatch.setattr(data, "tfds_load", fake_load)
    cfg = TrainConfig(dataset="some_tfds_set", data_dir=str(tmp_path), output_height=8, batch_size=4,
                      conditional=True, train_size=16)
    result = data.load_train_data(cfg)
    assert calls == [("some_tfds_set", "train")]
    assert (result.num_examples, result.c_dim, result.y_dim) == (16, 1, 10)
    assert result.dataset.element_spec[0].shape.as_list() == [4, 8, 8, 1]
    _, y = one_epoch(result)
    assert sorted(y.argmax(axis=1)) == sorted(examples["label"][:16])


# ----------------------------------------------------------------------------------------------------------
# Real data: the repo's Fashion-MNIST (always there), ../shared/data (skipped when absent)


def test_real_fashion_mnist():
    images, labels = datasets.load_idx("fashion_mnist", str(REPO_DATA))
    assert images.shape == (70_000, 28, 28, 1) and labels.shape == (70_000,)
    np.testing.assert_array_equal(np.bincount(labels), [7_000] * 10)
    info = data.load_train_data(TrainConfig(dataset="fashion_mnist", data_dir=str(REPO_DATA),
                                            output_height=28, train_size=256))
    assert (info.num_examples, info.steps_per_epoch, info.c_dim, info.y_dim) == (256, 4, 1, 10)
    x, y = next(iter(info.dataset))
    assert x.shape == (64, 28, 28, 1) and y.shape == (64, 10) and float(tf.reduce_min(x)) == -1.0


def test_real_emoji_folder(shared_data):
    cfg = TrainConfig(dataset="emoji-google-64", data_dir=str(shared_data), input_fname_pattern="*.png",
                      output_height=32, train_size=128, batch_size=32, flip=True)
    info = data.load_train_data(cfg)
    assert (info.num_examples, info.steps_per_epoch, info.c_dim, info.y_dim) == (128, 4, 3, 0)
    assert info.skipped == []
    x, _ = one_epoch(info)
    assert x.shape == (128, 32, 32, 3)
    assert np.mean(x[:, 0, 0] == 1.0) > 0.9  # transparent corners composited on white
