"""Tests of dcgan_tf.class_prior: the classifier prior and where the classifier is found."""

import json

import numpy as np

from dcgan_tf.class_prior import find_classifier, known_pixels_log_prior, log_softmax, trained_on_holes
from dcgan_tf.masks import make_mask, smooth_fill


def test_prior_is_the_log_softmax_of_the_classifier_on_the_fill():
    seen = []

    def classify(x):
        seen.append(x)
        return np.stack([x.mean(axis=(1, 2, 3)), -x.mean(axis=(1, 2, 3))], 1)

    images = np.random.RandomState(1).uniform(-1, 1, (3, 8, 8, 1)).astype(np.float32)
    masks = np.stack([make_mask("center", 8, 8, rng=None)] * 3)
    prior = known_pixels_log_prior(classify, images, masks)
    np.testing.assert_allclose(seen[0], smooth_fill(images, masks))
    np.testing.assert_allclose(np.exp(prior).sum(1), 1.0)
    np.testing.assert_allclose(prior, log_softmax(classify(seen[0])))
    assert (np.argmax(prior, 1) == (seen[0].mean(axis=(1, 2, 3)) < 0)).all()


def test_classifier_is_found_next_to_the_run(tmp_path):
    run = tmp_path / "checkpoints" / "fm_heldout"
    run.mkdir(parents=True)
    assert find_classifier(str(run), "fashion_mnist") is None
    folder = tmp_path / "checkpoints" / "classifier_fashion_mnist"
    folder.mkdir()
    (folder / "classifier.json").write_text(json.dumps({}))
    assert find_classifier(str(run), "fashion_mnist") == str(folder)
    assert find_classifier(str(run) + "/", "fashion_mnist") == str(folder)
    assert find_classifier(str(run), "mnist") is None
    masked = tmp_path / "checkpoints" / "classifier_fashion_mnist_masked"
    masked.mkdir()
    assert find_classifier(str(run), "fashion_mnist") == str(folder)  # an empty folder is no classifier
    (masked / "classifier.json").write_text(json.dumps({}))
    assert find_classifier(str(run), "fashion_mnist") == str(masked)  # the --mask_augment one first


def test_trained_on_holes_reads_the_saved_settings(tmp_path):
    for name, metadata in (("holes", {"mask_augment": 0.8}), ("plain", {"mask_augment": 0.0}), ("old", {})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "classifier.json").write_text(json.dumps({"metadata": metadata}))
    assert trained_on_holes(str(tmp_path / "holes"))
    assert not trained_on_holes(str(tmp_path / "plain")) and not trained_on_holes(str(tmp_path / "old"))
    assert not trained_on_holes(str(tmp_path / "missing"))
