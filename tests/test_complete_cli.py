"""Tests of complete.py and dcgan_tf.complete_cli: files per image, batches, re-runs, masks and bad input."""

import json
import os
import pathlib
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image
from run_factory import make_run

from dcgan_tf.complete_cli import output_names, resolve_image_paths, run_completion
from dcgan_tf.config import CompleteConfig
from dcgan_tf.decode import load_image
from dcgan_tf.errors import DcganError, FlagError
from dcgan_tf.metrics import psnr, ssim
from dcgan_tf.runs import find_run

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = 8
FILES = ("input.png", "masked.png", "mask.png", "generated.png", "completion.png", "losses.csv", "result.json")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    _, paths, _, _ = make_run(tmp_path_factory.mktemp("run"), size=SIZE)
    return paths.checkpoint_dir


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Five images of different sizes and modes; two share the stem `b`."""
    root = tmp_path_factory.mktemp("imgs")
    (root / "sub").mkdir()
    rs = np.random.RandomState(0)
    Image.fromarray(rs.randint(0, 256, (10, 12, 3), np.uint8)).save(root / "a.png")
    Image.fromarray(rs.randint(0, 256, (8, 8), np.uint8)).save(root / "b.png")  # grayscale
    Image.fromarray(rs.randint(0, 256, (16, 16, 4), np.uint8)).save(root / "sub" / "b.png")  # RGBA
    Image.fromarray(rs.randint(0, 256, (9, 9, 3), np.uint8)).convert("P").save(root / "c.png")  # palette
    Image.fromarray(rs.randint(0, 256, (30, 20, 3), np.uint8)).save(root / "d.jpg")
    return [str(root / n) for n in ("a.png", "b.png", "sub/b.png", "c.png", "d.jpg")]


def config(run_dir, imgs, out_dir, **kwargs):
    fields = dict(checkpoint_dir=run_dir, imgs=tuple(imgs), out_dir=str(out_dir), n_iter=3, batch_size=2)
    fields.update(kwargs)
    return CompleteConfig(**fields)


def read_png(path):
    return np.asarray(Image.open(path))


@pytest.mark.slow
def test_five_images_in_batches_of_two_get_complete_distinct_outputs(run_dir, images, tmp_path):
    summary = run_completion(config(run_dir, images, tmp_path, approach="adam", lr=0.1))
    names = output_names(images)
    assert len(set(names)) == 5 and sorted(summary["images"]) == sorted(names)
    for name, path in zip(names, images):
        folder = tmp_path / name
        assert all((folder / f).is_file() for f in FILES), name
        assert json.loads((folder / "result.json").read_text())["source"] == os.path.abspath(path)
        assert len((folder / "losses.csv").read_text().splitlines()) == 1 + 3 + 1  # header, 3 steps, final
        known = read_png(folder / "mask.png") > 127
        assert read_png(folder / "completion.png").shape[:2] == (SIZE, SIZE)
        np.testing.assert_array_equal(read_png(folder / "completion.png")[known], read_png(folder / "input.png")[known])
    record = summary["images"][names[0]]
    assert {"contextual", "perceptual", "total", "psnr_hole", "ssim_hole"} <= set(record)
    assert not list(tmp_path.rglob("*.tmp*"))  # every write was atomic
    alone = run_completion(config(run_dir, images[:1], tmp_path / "alone", approach="adam", lr=0.1))
    assert alone["images"]["a"]["total"] == pytest.approx(record["total"], rel=1e-5)  # batch-independent


@pytest.mark.slow
def test_rerun_skips_finished_images_and_overwrite_redoes_them(run_dir, images, tmp_path):
    cfg = config(run_dir, images[:3], tmp_path)
    run_completion(cfg)
    stamp = lambda: {n: (tmp_path / n / "result.json").stat().st_mtime_ns for n in output_names(images[:3])}
    before = stamp()
    (tmp_path / "a" / "result.json").unlink()  # as if killed while writing image `a`
    summary = run_completion(cfg)
    after = stamp()
    assert len(summary["images"]) == 3
    assert [n for n in before if after[n] != before[n]] == ["a"]
    run_completion(config(run_dir, images[:3], tmp_path, overwrite=True))
    assert all(v != after[n] for n, v in stamp().items())
    with pytest.raises(FlagError, match="--lam: is 0.5 but the completions"):
        run_completion(config(run_dir, images[:3], tmp_path, lam=0.5))


def test_out_interval_writes_snapshots_and_a_gif(run_dir, images, tmp_path):
    run_completion(config(run_dir, images[:1], tmp_path, n_iter=4, out_interval=2))
    snaps = sorted(p.name for p in (tmp_path / "a" / "snapshots").iterdir())
    assert snaps == [f"{kind}_{i:06d}.png" for kind in ("completion", "generated") for i in (0, 2, 4)]
    assert Image.open(tmp_path / "a" / "progress.gif").n_frames == 3


def test_unreadable_images_are_skipped_and_listed(run_dir, images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    summary = run_completion(config(run_dir, [str(broken), images[0]], tmp_path / "out"))
    assert list(summary["images"]) == ["a"]
    assert summary["skipped"][0]["path"] == str(broken) and "broken.png" in summary["skipped"][0]["error"]
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["skipped"] == summary["skipped"]
    with pytest.raises(DcganError, match="none of the 1 images could be read"):
        run_completion(config(run_dir, [str(broken)], tmp_path / "out2"))


@pytest.mark.slow
def test_mask_files(run_dir, images, tmp_path):
    left = np.full((SIZE, SIZE), 255, np.uint8)
    left[:, :3] = 0
    Image.fromarray(left).save(tmp_path / "left.png")
    run_completion(config(run_dir, images[:2], tmp_path / "one", mask_type="file", mask=str(tmp_path / "left.png")))
    np.testing.assert_array_equal(read_png(tmp_path / "one" / "b" / "mask.png"), left)

    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(DcganError, match="small.png is 5x5 but the model works on 8x8"):
        run_completion(config(run_dir, images[:1], tmp_path / "bad", mask_type="file",
                              mask=str(tmp_path / "small.png")))

    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(left).save(masks / "a.png")  # model size
    own = np.full((8, 8), 255, np.uint8)  # b.png is 8x8 itself; the image-size path is the 12x10 one below
    own[4:] = 0
    Image.fromarray(own).save(masks / "b.png")
    summary = run_completion(config(run_dir, images[:2], tmp_path / "per", mask_type="file", mask_dir=str(masks)))
    assert summary["images"]["b"]["hole_fraction"] == 0.5
    image_size = np.full((10, 12), 255, np.uint8)  # a.png's own size: cropped/resized like the image
    image_size[:, 6:] = 0
    Image.fromarray(image_size).save(masks / "a.png")
    run_completion(config(run_dir, images[:1], tmp_path / "own", mask_type="file", mask_dir=str(masks)))
    assert (read_png(tmp_path / "own" / "a" / "mask.png")[:, :4] == 255).all()
    with pytest.raises(DcganError, match="no mask for .*c.png"):
        run_completion(config(run_dir, [images[3]], tmp_path / "none", mask_type="file", mask_dir=str(masks)))


@pytest.mark.parametrize("mask_type", ["full", "lowres"])
def test_no_hole_types_return_the_generated_image(run_dir, images, tmp_path, mask_type):
    run_completion(config(run_dir, images[:1], tmp_path, mask_type=mask_type, lowres_factor=4))
    np.testing.assert_array_equal(read_png(tmp_path / "a" / "completion.png"),
                                  read_png(tmp_path / "a" / "generated.png"))


@pytest.mark.slow
def test_conditional_model_uses_the_label(tmp_path, images):
    _, paths, _, _ = make_run(tmp_path / "crun", conditional=True, size=SIZE, c_dim=1)
    summary = run_completion(config(paths.checkpoint_dir, images[:1], tmp_path / "out", label=3))
    assert summary["images"]["a"]["label"] == 3
    with pytest.raises(FlagError, match="--label: must be a class in"):
        run_completion(config(paths.checkpoint_dir, images[:1], tmp_path / "out", label=10))


@pytest.mark.slow
def test_label_free_summary_records_the_chosen_class_and_the_runner_up(tmp_path, images):
    _, paths, _, _ = make_run(tmp_path / "crun", conditional=True, size=SIZE, c_dim=1)
    summary = run_completion(config(paths.checkpoint_dir, images[:3], tmp_path / "out", n_iter=4, pilot_iter=2))
    assert summary["settings"]["classifier"] is None  # 8x8 run: no classifier prior
    for record in summary["images"].values():
        choice = record["class_choice"]
        pilot = np.array(choice["pilot_total"])
        assert pilot.shape == (10,) and np.isfinite(pilot).all()
        assert {choice["chosen"], choice["runner_up"]} == set(np.argsort(pilot)[:2])  # the pilot's top 2
        assert choice["chosen"] == record["label"]
        assert choice["chosen_losses"] == {k: record[k] for k in ("contextual", "perceptual", "total")}
        assert choice["chosen_losses"]["total"] <= choice["runner_up_losses"]["total"]
    given = run_completion(config(paths.checkpoint_dir, images[:1], tmp_path / "given", label=3))
    assert given["images"]["a"]["class_choice"] is None


@pytest.mark.slow
def test_label_free_uses_the_classifier_next_to_the_run_as_a_prior(tmp_path, images, caplog):
    from dcgan_tf.class_choice import weighted_known_pixels_prior
    from dcgan_tf.classifier import build_classifier, predict_logits, save_classifier
    from dcgan_tf.completion import Completer
    from dcgan_tf.decode import load_image
    from dcgan_tf.masks import make_mask
    from dcgan_tf.runs import load_run

    _, paths, _, _ = make_run(tmp_path / "crun", conditional=True, size=28, c_dim=1)
    classifier = build_classifier(filters=2, feature_dim=4, seed=3)
    save_classifier(classifier, str(pathlib.Path(paths.checkpoint_dir).parent / "classifier_tiny"))
    cfg = config(paths.checkpoint_dir, images[:2], tmp_path / "out", n_iter=2, pilot_iter=1, prior_weight=1e4)
    caplog.set_level("INFO", logger="absl")  # absl sets its own level when flags are parsed
    summary = run_completion(cfg)
    assert summary["settings"]["classifier"].endswith("classifier_tiny")
    assert "class prior: " in caplog.text and "--mask_augment 0.8" in caplog.text  # a plain one: the hint
    # the same choice as the library given the classifier's prior and the classifier itself
    pixels = np.stack([load_image(p, c_dim=1, output_height=28, output_width=28) for p in images[:2]])
    masks = np.stack([make_mask("center", 28, 28, rng=None)] * 2)
    classify = lambda x: predict_logits(classifier, x)
    run = load_run(paths.checkpoint_dir)
    completer = Completer(run.generator, run.discriminator, batch_size=2, z_dim=run.config.z_dim, y_dim=10)
    prior = weighted_known_pixels_prior(classify, pixels, masks)
    seeds = [int(np.random.SeedSequence([0, zlib.crc32(n.encode())]).generate_state(1)[0]) for n in ("a", "b")]
    expected = completer(pixels, masks, None, seeds=seeds, n_iter=2, pilot_iter=1, class_prior=prior,
                         classify=classify, prior_weight=1e4)
    assert [summary["images"][n]["label"] for n in ("a", "b")] == list(expected.labels)
    loss_only = completer(pixels, masks, None, seeds=seeds, n_iter=2, pilot_iter=1)
    off = run_completion(config(paths.checkpoint_dir, images[:2], tmp_path / "off", n_iter=2, pilot_iter=1,
                                classifier_dir="none"))
    assert off["settings"]["classifier"] is None
    assert [off["images"][n]["label"] for n in ("a", "b")] == list(loss_only.labels)


def test_lowres_class_prior_sees_only_the_block_means(tmp_path):
    """complete_batch's search gets a class prior computed on what a lowres completion knows."""
    from dcgan_tf.complete_cli import Item, complete_batch
    from dcgan_tf.completion import Completer

    class Found(Exception):
        pass

    class Recorder:  # stands in for the Completer: its `complete`, then keeps the prior the search is given
        pool, y_dim = 4, 10
        complete = Completer.complete

        def __call__(self, images, masks, labels, **kwargs):
            self.prior = kwargs["class_prior"]
            raise Found

    rs = np.random.RandomState(0)
    image = rs.uniform(-0.4, 0.4, (SIZE, SIZE, 1)).astype(np.float32)
    noise = rs.uniform(-0.5, 0.5, image.shape).astype(np.float32)
    for rows in (slice(0, 4), slice(4, 8)):  # zero mean in every 4x4 block: the same block means
        for cols in (slice(0, 4), slice(4, 8)):
            noise[rows, cols] -= noise[rows, cols].mean()
    known = np.ones((SIZE, SIZE, 1), np.float32)
    weights = rs.normal(size=(SIZE * SIZE, 10))
    classify = lambda x: np.square(np.reshape(x, (len(x), -1))) @ weights  # not linear in the pixels
    priors = []
    for pixels in (image, image + noise):
        completer = Recorder()
        batch = [Item("a.png", "a", pixels, known), Item("b.png", "b", image, known)]
        with pytest.raises(Found):
            complete_batch(completer, batch, config("x", [], tmp_path, mask_type="lowres", lowres_factor=4), "",
                           classify)
        priors.append(completer.prior)
    np.testing.assert_allclose(priors[0], priors[1], atol=1e-6)
    assert not np.allclose(classify(image[None]), classify((image + noise)[None]), atol=1e-3)


def test_bad_input_gives_one_line_errors(run_dir, images, tmp_path):
    with pytest.raises(DcganError, match="no trained run in .*nothing: train one first"):
        run_completion(config(str(tmp_path / "nothing"), images, tmp_path))
    with pytest.raises(FlagError, match="--imgs: no images matched"):
        run_completion(config(run_dir, [str(tmp_path / "*.png")], tmp_path))
    with pytest.raises(FlagError, match="--label: the model .* is not conditional"):
        run_completion(config(run_dir, images, tmp_path, label=1))


@pytest.mark.parametrize("flag,value", [
    ("n_iter", 0), ("batch_size", 0), ("num_restarts", 0), ("random_fraction", 1.0), ("random_fraction", -0.1),
    ("center_scale", 0.5), ("center_scale", 0.0), ("lam", -1.0), ("lr", 0.0), ("window", 4), ("window", 0),
    ("momentum", 1.0), ("beta2", 1.0), ("eps", 0.0), ("mask_type", "square"), ("approach", "hmc"),
    ("blend", "alpha"), ("half_side", "middle"), ("out_interval", -1), ("lowres_factor", 1),
    ("top_k", 0), ("pilot_iter", -1), ("class_search", "best"), ("prior_weight", -0.5), ("classifier_dir", "/no/dir"),
])
def test_flags_are_validated_by_name(flag, value):
    with pytest.raises(FlagError, match=f"^--{flag}: "):
        CompleteConfig(checkpoint_dir="x", **{flag: value}).validate()


def test_mask_flag_combinations(tmp_path):
    assert CompleteConfig().checkpoint_dir == "checkpoints"
    with pytest.raises(FlagError, match="^--checkpoint_dir: is empty"):
        CompleteConfig(checkpoint_dir="").validate()
    with pytest.raises(FlagError, match="^--mask_type: file needs"):
        CompleteConfig(checkpoint_dir="x", mask_type="file").validate()
    with pytest.raises(FlagError, match="^--mask: is only read with --mask_type file"):
        CompleteConfig(checkpoint_dir="x", mask=str(tmp_path)).validate()
    with pytest.raises(FlagError, match="^--mask_dir: .* is not a folder"):
        CompleteConfig(checkpoint_dir="x", mask_type="file", mask_dir=str(tmp_path / "no")).validate()


def test_paths_from_globs_commas_folders_and_positional(images, tmp_path):
    root = os.path.dirname(images[0])
    found = resolve_image_paths([f"{root}/*.png,{root}/d.jpg", images[0], os.path.join(root, "sub")])
    assert found == [images[0], images[1], images[3], images[4], images[2]]  # no repeats, in order
    assert output_names(found)[:2] == ["a", output_names(images)[1]] and output_names(found)[1].startswith("b-")


def run_script(*args):
    return subprocess.run([sys.executable, str(ROOT / "complete.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


@pytest.mark.slow
def test_script_takes_positional_paths_and_the_imgs_flag(run_dir, images, tmp_path):
    proc = run_script("--checkpoint_dir", run_dir, "--imgs", images[0], images[1], "--out_dir", str(tmp_path),
                      "--n_iter", "2")
    assert proc.returncode == 0, proc.stderr
    assert "done: 2 images" in proc.stdout and (tmp_path / "b" / "completion.png").is_file()


@pytest.mark.slow
def test_script_prints_one_line_error_and_exits_2(tmp_path):
    proc = run_script("--checkpoint_dir", str(tmp_path), "--imgs", "x.png", "--center_scale", "0.7")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: --center_scale: must be in (0, 0.5), got 0.7"
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------------------
# --checkpoint_dir: a run, or a folder of runs (bamos' `complete.py --imgs aligned/*`)


@pytest.mark.slow
def test_design_card_command_uses_the_one_run_in_checkpoints(tmp_path, images, idx_folder):
    from dcgan_tf.classifier import load_classifier, train_and_save

    make_run(tmp_path, size=SIZE)  # tmp_path/checkpoints/tiny_8x8, the only run
    classifier = tmp_path / "checkpoints" / "classifier_mnist"  # a trained classifier, as the tool saves it
    train_and_save("mnist", str(idx_folder.parent), epochs=1, batch_size=4, seed=0, out=str(classifier),
                   log=lambda line: None)
    assert load_classifier(str(classifier)) and (classifier / "classifier.json").is_file()  # not a run: ignored
    proc = subprocess.run([sys.executable, str(ROOT / "complete.py"), "--imgs", images[0], "--n_iter", "2"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "using the run in checkpoints: checkpoints/tiny_8x8" in proc.stderr
    assert (tmp_path / "completions" / "a" / "completion.png").is_file()


def make_runs(root, *specs):
    """Saves runs `(out_name, mtime, make_run keywords)` under root/checkpoints, each checkpoint dated mtime."""
    for name, mtime, kwargs in specs:
        _, paths, _, _ = make_run(root, out_name=name, **{"size": SIZE, **kwargs})
        for f in os.listdir(paths.checkpoint_dir):
            os.utime(os.path.join(paths.checkpoint_dir, f), (mtime, mtime))
    return root / "checkpoints"


@pytest.mark.slow
def test_several_runs_take_the_most_recently_written_and_say_which(tmp_path, images, caplog):
    checkpoints = make_runs(tmp_path, ("newer", 2_000_000_000, {}), ("older", 1_000_000_000, {}))
    caplog.set_level("INFO", logger="absl")  # absl sets its own level when flags are parsed
    summary = run_completion(config(str(checkpoints), images[:1], tmp_path / "out"))
    assert os.path.dirname(summary["settings"]["checkpoint"]) == str(checkpoints / "newer")
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "runs in" in r.getMessage()]
    assert warning.startswith(f"2 runs in {checkpoints}; using {checkpoints / 'newer'} (made for 8x8 images), the "
                              "most recently written of those that fit best; the others: "
                              f"{checkpoints / 'older'} (made for 8x8 images). Pick one with --checkpoint_dir")
    assert find_run(str(checkpoints / "older")) == (str(checkpoints / "older"), [])


@pytest.fixture
def rgb_8x8(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(np.random.RandomState(1).randint(0, 256, (SIZE, SIZE, 3), np.uint8)).save(path)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("newer", [{"c_dim": 1}, {"size": 16}, {"size": 16, "crop": True, "input_height": 32}])
def test_a_run_that_fits_the_images_wins_over_a_newer_one(tmp_path, rgb_8x8, caplog, newer):
    checkpoints = make_runs(tmp_path, ("newer", 2_000_000_000, newer), ("fits", 1_000_000_000, {}))
    caplog.set_level("INFO", logger="absl")
    summary = run_completion(config(str(checkpoints), [rgb_8x8], tmp_path / "out"))
    assert os.path.dirname(summary["settings"]["checkpoint"]) == str(checkpoints / "fits")
    warning = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert f"using {checkpoints / 'fits'} (fits the images)" in warning and "--checkpoint_dir" in warning
    reason = {"c_dim": "1 channel, the images have 3", "size": "made for 16x16 images"}[next(iter(newer))]
    assert f"the others: {checkpoints / 'newer'} ({reason}" in warning


def test_misfits_name_the_channels_and_the_size_or_crop_rule():
    from dcgan_tf.complete_cli import misfits

    flags = {"c_dim": 3, "output_width": 8, "output_height": 8, "input_height": 16, "input_width": 16, "crop": False}
    assert misfits(flags, 3, {(8, 8)}) == []
    assert misfits(flags, 1, {(8, 8), (20, 20)}) == ["3 channels, the images have 1", "made for 8x8 images"]
    cropped = {**flags, "crop": True}
    assert misfits(cropped, 3, {(8, 8), (20, 16)}) == []  # the output size as it is, or large enough to crop
    assert misfits(cropped, 3, {(12, 12)}) == ["made for 8x8 images or at least its 16x16 crop"]


@pytest.mark.slow
def test_a_checkpoint_rotated_during_the_scan_is_no_traceback(tmp_path, images, monkeypatch):
    """A run that is training saves a new checkpoint and deletes the one the scan has just read."""
    import tensorflow as tf

    checkpoints = make_runs(tmp_path, ("busy", 2_000_000_000, {}), ("still", 1_000_000_000, {}))
    busy, real, rotations = str(checkpoints / "busy"), tf.train.latest_checkpoint, []

    def rotating(folder, *args):  # the first read of the busy run names a checkpoint that is gone right after
        path = real(folder, *args)
        if folder != busy or path is None or rotations:
            return path
        rotations.append(path)
        old, number = os.path.basename(path), int(path.rsplit("-", 1)[1]) + 1
        for f in os.listdir(busy):
            if f.startswith(old + "."):
                os.rename(os.path.join(busy, f), os.path.join(busy, f.replace(old, f"ckpt-{number}")))
        with open(os.path.join(busy, "checkpoint"), "w") as f:
            f.write(f'model_checkpoint_path: "ckpt-{number}"\nall_model_checkpoint_paths: "ckpt-{number}"\n')
        return path

    monkeypatch.setattr(tf.train, "latest_checkpoint", rotating)
    folder, runs = find_run(str(checkpoints))  # read again: the busy run's new checkpoint
    assert folder == busy and len(runs) == 2
    monkeypatch.setattr(tf.train, "latest_checkpoint",
                        lambda folder, *a: os.path.join(busy, "ckpt-99") if folder == busy else real(folder, *a))
    folder, runs = find_run(str(checkpoints))  # still changing on every read: left out
    assert folder == str(checkpoints / "still") and [r.path for r in runs] == [folder]
    summary = run_completion(config(str(checkpoints), images[:1], tmp_path / "out"))
    assert os.path.dirname(summary["settings"]["checkpoint"]) == folder


def test_a_checkpoint_rotated_while_it_is_restored_is_read_again(run_dir, monkeypatch):
    import tensorflow as tf

    from dcgan_tf import runs

    real, latest, calls = runs.restore_latest, tf.train.latest_checkpoint(run_dir), []

    def restore(*args, **kwargs):  # the first read fails as the run saves a newer checkpoint and deletes this one
        calls.append(tf.train.latest_checkpoint(run_dir))
        if len(calls) == 1:
            monkeypatch.setattr(tf.train, "latest_checkpoint", lambda folder, *a: latest + "1")
            raise DcganError(f"checkpoint {latest} does not match this model (NotFoundError)")
        monkeypatch.setattr(tf.train, "latest_checkpoint", lambda folder, *a: latest)
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "restore_latest", restore)
    assert runs.load_run(run_dir).checkpoint_path == latest and len(calls) == 2
    calls.clear()

    def mismatch(*args, **kwargs):
        calls.append(1)
        raise DcganError("checkpoint does not match this model")

    monkeypatch.setattr(runs, "restore_latest", mismatch)
    with pytest.raises(DcganError, match="does not match"):  # no new checkpoint: a real mismatch, said once
        runs.load_run(run_dir)
    assert len(calls) == 1


def test_no_run_is_one_line_saying_how_to_train_one(tmp_path, images):
    (tmp_path / "checkpoints" / "empty").mkdir(parents=True)
    with pytest.raises(DcganError, match="^no trained run in .*checkpoints: train one first .*main.py"):
        run_completion(config(str(tmp_path / "checkpoints"), images[:1], tmp_path / "out"))
    with pytest.raises(DcganError, match="^no trained run in .*nowhere"):
        find_run(str(tmp_path / "nowhere"))


@pytest.mark.slow
def test_a_crop_run_takes_images_already_at_its_output_size_as_they_are(tmp_path, images, caplog):
    _, paths, _, _ = make_run(tmp_path, size=SIZE, crop=True, input_height=16)  # trained on 16x16 centre crops
    caplog.set_level("INFO", logger="absl")  # absl sets its own level when flags are parsed
    # b.png is 8x8 (the output size): used as it is; a.png is 12x10, smaller than the crop: skipped as before
    summary = run_completion(config(paths.checkpoint_dir, images[:2], tmp_path / "out"))
    assert list(summary["images"]) == ["b"] and [s["path"] for s in summary["skipped"]] == [images[0]]
    assert "smaller than the crop" in summary["skipped"][0]["error"]
    assert f"{images[1]} is already 8x8, the model's output size: used as it is, without the 16x16 crop" in caplog.text
    written = read_png(tmp_path / "out" / "b" / "input.png")  # the 8x8 grayscale image in the run's 3 channels
    np.testing.assert_array_equal(written, np.repeat(read_png(images[1])[..., None], 3, axis=-1))


def test_scores_are_those_of_the_written_completion(run_dir, images, tmp_path):
    """psnr_hole / ssim_hole in result.json are computed on completion.png itself (clipped, 8-bit)."""
    run_completion(config(run_dir, images[:1], tmp_path, n_iter=2))
    record = json.loads((tmp_path / "a" / "result.json").read_text())
    written = read_png(tmp_path / "a" / "completion.png").astype(np.float32) / 127.5 - 1.0
    image = load_image(images[0], c_dim=3, output_height=SIZE, output_width=SIZE)  # as complete.py loads it
    hole = 1.0 - read_png(tmp_path / "a" / "mask.png")[..., None] / 255.0
    assert record["psnr_hole"] == pytest.approx(psnr(image, written, hole), rel=1e-6)
    assert record["ssim_hole"] == pytest.approx(ssim(image, written, hole), rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("conditional", [False, True])
def test_outputs_equal_the_python_api_bit_for_bit(tmp_path, images, conditional):
    """complete.py writes exactly what `dcgan_tf.load_run(...).complete` returns for the same images, masks,
    seed and batch size: one function does the numbers (Completer.complete)."""
    import dcgan_tf
    from dcgan_tf.complete_cli import Item

    size, c_dim = (28, 1) if conditional else (SIZE, 3)
    _, paths, _, _ = make_run(tmp_path / "run", conditional=conditional, size=size, c_dim=c_dim)
    settings = dict(n_iter=3, seed=4, num_restarts=2, batch_size=2)
    if conditional:  # label-free, with the class prior of a classifier next to the run
        from dcgan_tf.classifier import build_classifier, save_classifier

        save_classifier(build_classifier(filters=2, feature_dim=4, seed=3),
                        str(pathlib.Path(paths.checkpoint_dir).parent / "classifier_tiny"))
        settings.update(pilot_iter=1, top_k=2)
    mask_type = "center" if conditional else "random"
    summary = run_completion(config(paths.checkpoint_dir, images, tmp_path / "out", mask_type=mask_type, **settings))
    names = output_names(images)
    run = dcgan_tf.load_run(paths.checkpoint_dir)
    done = run.complete([Image.open(p) for p in images], mask_type=mask_type,
                        keys=[Item(p, n).key for p, n in zip(images, names)], **settings)
    for i, name in enumerate(names):
        for file, expected in (("completion.png", done.images[i]), ("generated.png", done.generated[i])):
            np.testing.assert_array_equal(read_png(tmp_path / "out" / name / file).reshape(expected.shape), expected)
        record = summary["images"][name]
        assert (record["psnr_hole"], record["ssim_hole"]) == (done.psnr[i], done.ssim[i])
        assert record["label"] == (int(done.labels[i]) if conditional else None)
    if conditional:
        assert [summary["images"][n]["class_choice"]["runner_up"] for n in names] == list(done.runner_up)
