"""Tests for dcgan_tf.evaluate: the evaluator, its cached real reference, evaluate_run and the real floor.

Everything runs on a tiny self-made "fashion_mnist" (idx files of bright squares, one place per class) and a
tiny classifier trained on it, so no test needs ../shared/data or the network.
"""

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from idx_files import write_idx
from run_factory import make_run, tiny_config

from dcgan_tf import evaluate
from dcgan_tf.classifier import build_classifier, save_classifier, train_classifier
from dcgan_tf.config import read_saved_flags
from dcgan_tf.errors import FlagError
from dcgan_tf.model import models_from_config

SIZE = 28
NUM_CLASSES = 10


def _square_images(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, 28, 28] images where class k is a bright 6x6 square at its own place, plus noise; labels [n]."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(NUM_CLASSES), n_per_class)
    images = np.zeros((labels.size, SIZE, SIZE), np.float32)
    for i, k in enumerate(labels):
        r, c = 2 + 6 * (k // 3), 2 + 8 * (k % 3)  # a 4x3 grid of places
        images[i, r:r + 6, c:c + 6] = 255.0
    images += rng.normal(0, 30, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """data_dir with a tiny fashion_mnist (30 train, 20 test images per class) and a classifier trained on it."""
    root = tmp_path_factory.mktemp("eval")
    folder = root / "data" / "fashion_mnist"
    folder.mkdir(parents=True)
    splits = {"train": _square_images(30, seed=0), "t10k": _square_images(20, seed=1)}
    for prefix, (images, labels) in splits.items():
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    train_images, train_labels = splits["train"]
    model = train_classifier(train_images[..., None], train_labels, epochs=6, batch_size=32, seed=0,
                             learning_rate=3e-3, filters=4, feature_dim=16)
    save_classifier(model, str(root / "classifier"))
    return root


def _config(root, tiny_data, **overrides):
    fields = dict(conditional=True, size=SIZE, c_dim=1, dataset="fashion_mnist", data_dir=str(tiny_data / "data"),
                  classifier_dir=str(tiny_data / "classifier"))
    return tiny_config(root, **{**fields, **overrides})


@pytest.fixture(scope="module")
def evaluator(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    cfg = _config(root, tiny_data)
    return cfg, evaluate.create_evaluator(cfg, c_dim=1, y_dim=NUM_CLASSES, cache_dir=str(root / "cache"),
                                          kid_subsets=10)


class _ClassImages:
    """A stand-in conditional generator: a real test image of the requested class (shifted by `offset`)."""

    def __init__(self, offset: int = 0):
        images, labels = _square_images(20, seed=1)  # the test split
        self.bank = np.stack([images[labels == k][0] for k in range(NUM_CLASSES)])[..., None] / 127.5 - 1.0
        self.offset = offset

    def __call__(self, z, labels, training=False):
        ids = (np.argmax(np.asarray(labels), axis=1) + self.offset) % NUM_CLASSES
        return tf.constant(self.bank[ids], tf.float32)


# --------------------------------------------------------------------------------------------------------------
# The evaluator


def test_metrics_are_finite_and_reproducible_by_seed(evaluator):
    cfg, ev = evaluator
    G, _ = models_from_config(cfg, 1, NUM_CLASSES)
    first = ev(G, num_samples=60, batch_size=25, seed=3)
    assert set(first) == {"fid", "kid", "kid_std", "classifier_score", "accuracy"}
    assert all(math.isfinite(v) for v in first.values())
    assert first["fid"] > 0 and 1 <= first["classifier_score"] <= NUM_CLASSES and 0 <= first["accuracy"] <= 1
    assert ev(G, num_samples=60, batch_size=25, seed=3) == first
    assert ev(G, num_samples=60, batch_size=25, seed=4)["fid"] != first["fid"]


def test_accuracy_is_against_the_requested_labels(tiny_data, evaluator):
    _, ev = evaluator
    right = ev(_ClassImages(), num_samples=50, seed=0)
    wrong = ev(_ClassImages(offset=1), num_samples=50, seed=0)
    assert right["accuracy"] > 0.9 and wrong["accuracy"] < 0.1
    assert right["classifier_score"] > 5  # every class equally often, each confidently recognised


def test_unconditional_generator_has_no_accuracy(tiny_data, tmp_path):
    cfg = _config(tmp_path, tiny_data, conditional=False)
    ev = evaluate.create_evaluator(cfg, c_dim=1, y_dim=0, cache_dir=str(tmp_path / "cache"), kid_subsets=5)
    G, _ = models_from_config(cfg, 1, 0)
    assert set(ev(G, num_samples=20, seed=0)) == {"fid", "kid", "kid_std", "classifier_score"}


def test_real_test_set_against_itself_scores_zero_fid(evaluator):
    cfg, ev = evaluator
    real = ev.score_batches(evaluate._idx_batches(cfg, "test", ev.image_shape))
    assert real["fid"] == pytest.approx(0.0, abs=1e-6)
    untrained, _ = models_from_config(cfg, 1, NUM_CLASSES)
    # Unbiased KID of a set against itself is slightly negative: it drops the k(x, x) terms of one side only.
    assert abs(real["kid"]) < 0.1 * ev(untrained, num_samples=200)["kid"]
    assert real["accuracy"] == ev.reference.scores["accuracy"] > 0.9
    assert ev.reference.num_images == 200
    assert ev.reference.source == "fashion_mnist test split (not held out: the run also trained on it, --idx_split all)"


def test_wrong_image_shape_is_refused(evaluator):
    _, ev = evaluator
    with pytest.raises(ValueError, match="shape"):
        ev.score_batches([(np.zeros((2, 16, 16, 1), np.float32), None)])


# --------------------------------------------------------------------------------------------------------------
# The cached reference


def test_reference_is_computed_once(tiny_data, tmp_path, monkeypatch):
    calls = []
    original = evaluate._reference_batches
    monkeypatch.setattr(evaluate, "_reference_batches", lambda *a: calls.append(1) or original(*a))
    cfg = _config(tmp_path, tiny_data)
    cache = tmp_path / "cache"
    first = evaluate.create_evaluator(cfg, c_dim=1, y_dim=NUM_CLASSES, cache_dir=str(cache))
    second = evaluate.create_evaluator(cfg, c_dim=1, y_dim=NUM_CLASSES, cache_dir=str(cache))
    assert len(calls) == 1
    np.testing.assert_array_equal(first.reference.sigma, second.reference.sigma)
    np.testing.assert_array_equal(first.reference.features, second.reference.features)
    assert first.reference.scores == second.reference.scores
    assert [p.suffix for p in cache.iterdir()] == [".npz"]  # one file, no temporary left behind
    other = build_classifier(filters=4, feature_dim=16, seed=1)  # other features: another cache entry
    save_classifier(other, str(tmp_path / "other"))
    evaluate.create_evaluator(_config(tmp_path, tiny_data, classifier_dir=str(tmp_path / "other")), c_dim=1,
                              y_dim=NUM_CLASSES, cache_dir=str(cache))
    assert len(calls) == 2


def test_default_cache_is_under_the_checkpoint_dir(tiny_data, tmp_path):
    cfg = _config(tmp_path, tiny_data)
    evaluate.create_evaluator(cfg, c_dim=1, y_dim=NUM_CLASSES, kid_subsets=5)
    assert len(os.listdir(os.path.join(cfg.checkpoint_dir, "eval_cache"))) == 1


def test_image_folder_reference_uses_the_training_images(make_image_folder, tmp_path):
    folder = make_image_folder(name="noise", n=22, size=SIZE, mode="L")
    model = build_classifier(filters=4, feature_dim=16)
    save_classifier(model, str(tmp_path / "classifier"))
    cfg = tiny_config(tmp_path, size=SIZE, dataset=folder.name, data_dir=str(folder.parent),
                      input_fname_pattern="*.png", eval_features="classifier",
                      classifier_dir=str(tmp_path / "classifier"))
    ev = evaluate.create_evaluator(cfg, c_dim=1, y_dim=0, cache_dir=str(tmp_path / "cache"), kid_subsets=5)
    assert ev.reference.num_images == 20  # five whole batches of 4
    assert "accuracy" not in ev.reference.scores and "classifier_score" in ev.reference.scores
    G, _ = models_from_config(cfg, 1, 0)
    assert math.isfinite(ev(G, num_samples=10, seed=0)["fid"])


# --------------------------------------------------------------------------------------------------------------
# Flag errors


def test_missing_classifier_names_classifier_dir(tiny_data, tmp_path):
    cfg = _config(tmp_path, tiny_data, classifier_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FlagError, match="python -m dcgan_tf.classifier") as e:
        evaluate.create_evaluator(cfg, c_dim=1, y_dim=NUM_CLASSES)
    assert e.value.flag == "classifier_dir"


def test_default_classifier_dir_follows_the_dataset(tiny_data, tmp_path):
    cfg = _config(tmp_path, tiny_data, classifier_dir="")
    assert evaluate.classifier_path(cfg) == os.path.join("checkpoints", "classifier_fashion_mnist")


@pytest.mark.parametrize("overrides, c_dim", [
    (dict(dataset="faces", size=32, conditional=False), 3),  # auto: not 28x28 labelled data
    (dict(eval_features="inception"), 1),
])
def test_inception_without_weights_names_fid_weights(tiny_data, tmp_path, overrides, c_dim):
    cfg = _config(tmp_path, tiny_data, **overrides)
    assert evaluate.resolve_features(cfg, c_dim) == "inception"
    with pytest.raises(FlagError, match="download InceptionV3 no-top weights") as e:
        evaluate.create_evaluator(cfg, c_dim=c_dim, y_dim=0)
    assert e.value.flag == "fid_weights"


def test_classifier_features_need_28x28x1(tiny_data, tmp_path):
    cfg = _config(tmp_path, tiny_data, size=32, eval_features="classifier")
    with pytest.raises(FlagError, match="28x28x1") as e:
        evaluate.create_evaluator(cfg, c_dim=1, y_dim=NUM_CLASSES)
    assert e.value.flag == "eval_features"


# --------------------------------------------------------------------------------------------------------------
# Whole runs and the real floor


@pytest.mark.slow
def test_evaluate_run_writes_eval_json(tiny_data, tmp_path):
    cfg, paths, _, _ = make_run(tmp_path, conditional=True, size=SIZE, c_dim=1, train_steps=1,
                                dataset="fashion_mnist", data_dir=str(tiny_data / "data"),
                                classifier_dir=str(tiny_data / "classifier"), num_eval_samples=40)
    record = evaluate.evaluate_run(cfg)
    with open(os.path.join(paths.run_dir, "eval.json")) as f:
        written = json.load(f)
    assert written == record
    assert written["step"] == 1 and written["num_samples"] == 40 and written["dataset"] == "fashion_mnist"
    assert written["extractor"].startswith("classifier_")
    assert set(written["metrics"]) == {"fid", "kid", "kid_std", "classifier_score", "accuracy"}
    assert evaluate.evaluate_run(cfg, num_samples=20)["num_samples"] == 20
    assert written["reference"] == ("fashion_mnist test split (not held out: the run also trained on it, "
                                    "--idx_split all), 200 images")


def test_eval_json_says_when_the_test_split_was_held_out(tiny_data, tmp_path):
    cfg, paths, _, _ = make_run(tmp_path, conditional=True, size=SIZE, c_dim=1, idx_split="train",
                                dataset="fashion_mnist", data_dir=str(tiny_data / "data"),
                                classifier_dir=str(tiny_data / "classifier"), num_eval_samples=20)
    # this command's --idx_split is not what counts: the saved run's is
    record = evaluate.evaluate_run(dataclasses.replace(cfg, idx_split="all"))
    assert record["reference"].startswith("fashion_mnist test split (held out: the run trained with --idx_split "
                                          "train)")


def test_real_floor_is_far_below_an_untrained_generator(tiny_data, evaluator):
    cfg, ev = evaluator
    floor = evaluate.real_floor(cfg, num_samples=100, evaluator=ev)
    untrained, _ = models_from_config(cfg, 1, NUM_CLASSES)
    far = ev(untrained, num_samples=100)
    assert 0 < floor["fid"] < 0.1 * far["fid"] and floor["kid"] < 0.1 * far["kid"]
    assert floor["accuracy"] == ev.reference.scores["accuracy"]
    assert "fid" in evaluate.format_metrics(floor) and "accuracy" in evaluate.format_metrics(floor)


def test_real_floor_needs_a_test_split(tmp_path):
    cfg = tiny_config(tmp_path, dataset="faces")
    with pytest.raises(FlagError) as e:
        evaluate.real_floor(cfg)
    assert e.value.flag == "dataset"


@pytest.mark.slow
def test_eval_freq_logs_quality_to_tensorboard_during_training(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dcgan_tf.training import train

    cfg = dataclasses.replace(_config(tmp_path, tiny_data), epoch=1, batch_size=50, eval_freq=3, eval_samples=40,
                              log_freq=100, sample_freq=100, ckpt_freq=100, input_height=SIZE)
    result = train(cfg)
    assert result.step == 10  # (30 + 20) images x 10 classes / batch 50
    for tag in ("fid", "kid", "classifier_score", "accuracy"):
        assert np.isfinite(result.metrics[tag]), tag
    events = EventAccumulator(result.paths.run_dir, size_guidance={"tensors": 0}).Reload()
    eval_tags = {"eval/fid", "eval/kid", "eval/kid_std", "eval/classifier_score", "eval/accuracy"}
    assert eval_tags <= set(events.Tags()["tensors"])
    steps = [e.step for e in events.Tensors("eval/fid")]
    assert steps == [3, 6, 9]


@pytest.mark.slow
def test_eval_freq_under_mirrored_strategy(tiny_data, tmp_path):
    """The chief evaluates the replicated generator between distributed steps (one replica on this machine)."""
    from dcgan_tf.training import train

    cfg = dataclasses.replace(_config(tmp_path, tiny_data), epoch=1, batch_size=50, eval_freq=5, eval_samples=40,
                              log_freq=100, sample_freq=100, ckpt_freq=100, input_height=SIZE, strategy="mirrored")
    result = train(cfg)
    assert result.step == 10 and read_saved_flags(result.paths)["strategy"] == "mirrored"
    assert all(np.isfinite(result.metrics[tag]) for tag in ("fid", "kid", "classifier_score", "accuracy"))
