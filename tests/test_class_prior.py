"""Tests of dcgan_tf.class_prior: the smooth fill of holes, the classifier prior and where the classifier is found."""

import json

import numpy as np

from dcgan_tf.class_prior import find_classifier, known_pixels_log_prior, log_softmax, smooth_fill
from dcgan_tf.masks import make_mask


def test_fill_keeps_known_pixels_and_reproduces_a_constant_image():
    masks = np.stack([make_mask("center", 16, 16, rng=None),
                      make_mask("random", 16, 16, rng=np.random.default_rng(0), random_fraction=0.8)])
    images = np.random.RandomState(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    filled = smooth_fill(images, masks)
    known = np.broadcast_to(masks > 0.5, images.shape)
    np.testing.assert_array_equal(filled[known], images[known])
    assert filled[~known].min() >= images.min() and filled[~known].max() <= images.max()  # convex weights
    constant = np.full((2, 16, 16, 3), 0.25, np.float32)
    np.testing.assert_allclose(smooth_fill(constant, masks), constant, atol=1e-5)  # a 12x12 hole's centre too


def test_fill_follows_the_nearest_known_pixels():
    image = np.zeros((1, 9, 9, 1), np.float32)
    image[0, :, :4] = -1.0  # left part dark, right part bright
    image[0, :, 5:] = 1.0
    mask = np.ones((1, 9, 9, 1), np.float32)
    mask[0, 3:6, 3:6] = 0.0
    filled = smooth_fill(image, mask)[0, :, :, 0]
    assert filled[4, 3] < 0 < filled[4, 5]


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
