"""Tests for dcgan_tf.classifier: the model, training, scores, save/load, idx reading and the CLI function."""

import json
import os

import numpy as np
import pytest
from absl import flags
from conftest import REPO_DATA
from idx_files import write_idx

from dcgan_tf import classifier as C
from dcgan_tf.cli import parse_flags
from dcgan_tf.config import ClassifierConfig
from dcgan_tf.datasets import load_idx
from dcgan_tf.errors import DcganError, FlagError

TINY = {"filters": 4, "feature_dim": 16}


def _separable_set(n_per_class=20, num_classes=10, seed=0):
    """Images [n, 28, 28, 1] in [-1, 1] where class k is a bright 6x6 square at its own place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    images = np.full((labels.size, 28, 28, 1), -1.0, np.float32)
    for i, k in enumerate(labels):
        r, c = 2 + 6 * (k // 3), 2 + 8 * (k % 3)  # a 4x3 grid of places
        images[i, r:r + 6, c:c + 6] = 1.0
    images += rng.normal(0, 0.2, images.shape).astype(np.float32)
    return np.clip(images, -1, 1), labels


def test_shapes():
    model = C.build_classifier(**TINY)
    images = np.zeros((5, 28, 28, 1), np.float32)
    assert model(images, training=False).shape == (5, 10)
    assert model.features(images, training=False).shape == (5, 16)
    assert C.build_classifier(num_classes=3, **TINY)(images).shape == (5, 3)


def test_to_model_range():
    out = C.to_model_range(np.array([0, 255], np.uint8))
    np.testing.assert_allclose(out, [-1.0, 1.0])
    assert out.dtype == np.float32


def test_training_reduces_loss_on_separable_data():
    images, labels = _separable_set()
    model = C.build_classifier(seed=0, **TINY)
    loss_before = float(C.cross_entropy(labels, C.predict_logits(model, images)))
    history = []
    C.train_classifier(images, labels, epochs=6, batch_size=32, seed=0, learning_rate=3e-3, model=model,
                       on_epoch_end=lambda epoch, m: history.append(m))
    loss_after = float(C.cross_entropy(labels, C.predict_logits(model, images)))
    assert len(history) == 6 and history[-1]["loss"] < history[0]["loss"]
    assert loss_after < 0.5 * loss_before
    assert C.classifier_scores(model, images, labels)["accuracy"] > 0.9


def test_training_is_reproducible_by_seed():
    images, labels = _separable_set(n_per_class=4)
    a = C.train_classifier(images, labels, epochs=1, batch_size=16, seed=3, **TINY)
    b = C.train_classifier(images, labels, epochs=1, batch_size=16, seed=3, **TINY)
    np.testing.assert_array_equal(C.predict_logits(a, images), C.predict_logits(b, images))


def test_train_rejects_mismatched_labels():
    images, labels = _separable_set(n_per_class=2)
    with pytest.raises(ValueError, match="labels"):
        C.train_classifier(images, labels[:-1], epochs=1)


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    images, _ = _separable_set(n_per_class=2)
    model = C.build_classifier(seed=5, filters=8, feature_dim=24, dropout=0.1)
    out = str(tmp_path / "clf")
    C.save_classifier(model, out, {"dataset": "blobs"})
    loaded = C.load_classifier(out)
    np.testing.assert_array_equal(C.predict_logits(model, images), C.predict_logits(loaded, images))
    assert loaded.architecture() == model.architecture()
    assert sorted(os.listdir(out)) == [C.CONFIG_FILE, C.WEIGHTS_FILE]  # no temporary files left
    with open(os.path.join(out, C.CONFIG_FILE)) as f:
        assert json.load(f)["metadata"] == {"dataset": "blobs"}


def test_load_errors_name_the_folder(tmp_path):
    with pytest.raises(DcganError, match="no saved classifier"):
        C.load_classifier(str(tmp_path / "nothing"))
    out = str(tmp_path / "clf")
    C.save_classifier(C.build_classifier(**TINY), out)
    C.build_classifier(seed=1, **TINY).save_weights(os.path.join(out, C.WEIGHTS_FILE))  # weights of another save
    with pytest.raises(DcganError, match="does not match"):
        C.load_classifier(out)


def test_classifier_score_of_confident_uniform_classes_is_num_classes():
    labels = np.arange(1000) % 10
    logits = 50.0 * np.eye(10)[labels]
    assert C.scores_from_logits(logits)["classifier_score"] == pytest.approx(10.0, rel=1e-6)


def test_classifier_score_of_a_single_class_is_one():
    logits = np.tile(50.0 * np.eye(10)[3], (100, 1))
    assert C.scores_from_logits(logits)["classifier_score"] == pytest.approx(1.0, abs=1e-6)
    uncertain = np.zeros((100, 10))  # uniform p(y|x): no information either
    assert C.scores_from_logits(uncertain)["classifier_score"] == pytest.approx(1.0, abs=1e-9)


def test_accuracy_against_requested_labels():
    predicted = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    logits = 5.0 * np.eye(10)[predicted]
    requested = predicted.copy()
    requested[:3] = [9, 9, 9]  # 3 of 10 wrong (one of them, index 9, stays right)
    scores = C.scores_from_logits(logits, requested)
    assert scores["accuracy"] == pytest.approx(0.7)
    assert "accuracy" not in C.scores_from_logits(logits)
    with pytest.raises(ValueError, match="labels"):
        C.scores_from_logits(logits, requested[:5])


def test_classifier_scores_uses_the_model_in_batches():
    images, labels = _separable_set(n_per_class=3)
    model = C.build_classifier(**TINY)
    predicted = C.predict_logits(model, images).argmax(axis=1)
    scores = C.classifier_scores(model, images, labels, batch_size=7)
    assert scores["accuracy"] == pytest.approx(float((predicted == labels).mean()))
    assert 1.0 <= scores["classifier_score"] <= 10.0


# --------------------------------------------------------------------------------------------------------------
# idx files and the CLI function


def _write_tiny_dataset(folder, gz=True):
    images, labels = _separable_set(n_per_class=6)
    uint8 = np.round((images[..., 0] + 1) * 127.5).astype(np.uint8)  # [N, 28, 28]
    folder.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx(f"{folder}/{prefix}-images-idx3-ubyte" + (".gz" if gz else ""), uint8)
        write_idx(f"{folder}/{prefix}-labels-idx1-ubyte" + (".gz" if gz else ""), labels)
    return uint8, labels


def test_train_and_save_on_self_made_files(tmp_path):
    _write_tiny_dataset(tmp_path / "mnist")
    out = str(tmp_path / "clf")
    lines = []
    scores = C.train_and_save("mnist", str(tmp_path), epochs=2, batch_size=16, seed=0, out=out, log=lines.append)
    assert any("test accuracy" in line for line in lines)
    assert 0.0 <= scores["accuracy"] <= 1.0
    with open(os.path.join(out, C.CONFIG_FILE)) as f:
        assert json.load(f)["metadata"]["test_accuracy"] == scores["accuracy"]
    C.load_classifier(out)


def program_flags() -> flags.FlagValues:
    """The classifier program's flags, on their own FlagValues (the global one may hold main.py's)."""
    values = flags.FlagValues()
    C.define_program_flags(values)
    return values


@pytest.mark.parametrize("field,value", [("dataset", "celebA"), ("epochs", 0), ("batch_size", 0),
                                         ("mask_augment", 1.5)])
def test_flag_validation_names_the_flag(field, value):
    with pytest.raises(FlagError, match=f"^--{field}: "):
        ClassifierConfig(**{field: value}).validate()


def test_a_dataset_outside_the_choices_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        parse_flags(["classifier", "--epochs=1", "--dataset", "celebA"], program_flags())
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: --dataset: must be one of mnist, fashion_mnist, got 'celebA'\n"


def config_for(*argv: str) -> ClassifierConfig:
    values = program_flags()
    values(["classifier", *argv])
    return C.config_from_flags(values)


def test_the_flags_keep_their_defaults_and_the_output_folder_follows_them():
    cfg = config_for()
    assert (cfg.dataset, cfg.data_dir, cfg.epochs, cfg.batch_size, cfg.seed, cfg.mask_augment) == (
        "fashion_mnist", "./data", 5, 128, 0, 0.0)
    assert cfg.out == os.path.join("checkpoints", "classifier_fashion_mnist")
    assert config_for("--dataset=mnist", "--mask_augment=0.8").out == os.path.join("checkpoints",
                                                                                  "classifier_mnist_masked")
    assert config_for("--classifier_out=elsewhere", "--mask_augment=0.8").out == "elsewhere"
    with pytest.raises(FlagError, match="^--epochs: "):
        config_for("--epochs=0")


def test_mask_some_masks_about_the_fraction_and_fills_the_holes():
    images = np.random.RandomState(0).uniform(-1, 1, (200, 12, 12, 1)).astype(np.float32)
    np.testing.assert_array_equal(C.mask_some(images, 0.0, np.random.default_rng(0)), images)
    out = C.mask_some(images, 0.5, np.random.default_rng(0))
    changed = np.any(out != images, axis=(1, 2, 3))
    assert 60 < changed.sum() < 140
    assert np.all(np.abs(out) <= 1.0)  # fills are convex combinations of known pixels
    constant = np.full((20, 12, 12, 1), 0.3, np.float32)
    np.testing.assert_allclose(C.mask_some(constant, 1.0, np.random.default_rng(1)), constant, atol=1e-5)


def test_train_and_save_with_mask_augment_reports_the_masked_accuracy(tmp_path):
    _write_tiny_dataset(tmp_path / "mnist")
    out = str(tmp_path / "clf_masked")
    lines = []
    scores = C.train_and_save("mnist", str(tmp_path), epochs=1, batch_size=16, seed=0, out=out, mask_augment=0.8,
                              log=lines.append)
    assert any("random hole" in line for line in lines)
    with open(os.path.join(out, C.CONFIG_FILE)) as f:
        metadata = json.load(f)["metadata"]
    assert metadata["mask_augment"] == 0.8 and metadata["masked_test_accuracy"] == scores["masked_accuracy"]


@pytest.mark.slow
def test_real_fashion_mnist_short_training():
    train_images, train_labels = load_idx("fashion_mnist", str(REPO_DATA), "train")
    test_images, test_labels = load_idx("fashion_mnist", str(REPO_DATA), "test")
    assert train_images.shape == (60000, 28, 28, 1) and test_images.shape == (10000, 28, 28, 1)
    assert set(np.unique(test_labels)) == set(range(10))
    model = C.train_classifier(train_images[:3000], train_labels[:3000], epochs=1, batch_size=64, seed=0)
    scores = C.classifier_scores(model, C.to_model_range(test_images[:1000]), test_labels[:1000])
    assert scores["accuracy"] > 0.6
