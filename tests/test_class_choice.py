"""Tests of dcgan_tf.class_choice: log_softmax, the classifier's terms and the ranking of candidate classes.

Everything here is pure NumPy on tiny arrays with hand-made classifiers; completion's own search (which runs the
classes and calls choose_classes) is tested in test_completion.py.
"""

import numpy as np
import pytest

from dcgan_tf.blend import paste
from dcgan_tf.class_choice import (
    KNOWN_PIXELS_WEIGHT,
    choose_classes,
    class_scores,
    consistency,
    known_pixels_log_prior,
    log_softmax,
    weighted_known_pixels_prior,
)
from dcgan_tf.masks import lowres_view, make_mask, smooth_fill


def test_log_softmax_normalises_each_row_and_ignores_a_shift():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1000.0, 0.0, -1000.0]])
    log_p = log_softmax(logits)
    assert log_p.dtype == np.float64 and np.isfinite(log_p).all()  # no overflow at large logits
    np.testing.assert_allclose(np.exp(log_p).sum(1), 1.0)
    np.testing.assert_allclose(log_p[0], logits[0] - np.log(np.exp(logits[0]).sum()))
    np.testing.assert_allclose(log_p[1], np.log(1 / 3))
    np.testing.assert_allclose(log_softmax(logits + 7.0), log_p)


def test_class_scores_are_log_losses_minus_the_weighted_prior():
    losses = np.array([[1.0, np.e, 2.0]])
    np.testing.assert_allclose(class_scores(losses), [[0.0, 1.0, np.log(2.0)]])
    log_prior = np.log([[0.2, 0.7, 0.1]])
    np.testing.assert_allclose(class_scores(losses, log_prior, 0.5), np.log(losses) - 0.5 * log_prior)
    assert np.argmin(class_scores(losses, log_prior, 0.0)) == 0 and np.argmin(class_scores(losses, log_prior, 5)) == 1
    assert np.isfinite(class_scores(np.zeros((1, 2)))).all()  # a zero loss is clipped before the log


def _images_and_masks(n=3, size=8, seed=1):
    images = np.random.RandomState(seed).uniform(-1, 1, (n, size, size, 1)).astype(np.float32)
    return images, np.stack([make_mask("center", size, size, rng=None)] * n)


def test_known_pixels_prior_is_the_log_softmax_of_the_classifier_on_the_fill():
    seen = []

    def classify(x):
        seen.append(x)
        return np.stack([x.mean(axis=(1, 2, 3)), -x.mean(axis=(1, 2, 3))], 1)

    images, masks = _images_and_masks()
    prior = known_pixels_log_prior(classify, images, masks)
    np.testing.assert_allclose(seen[0], smooth_fill(images, masks))
    np.testing.assert_allclose(np.exp(prior).sum(1), 1.0)
    np.testing.assert_allclose(prior, log_softmax(classify(seen[0])))
    assert (np.argmax(prior, 1) == (seen[0].mean(axis=(1, 2, 3)) < 0)).all()
    np.testing.assert_allclose(weighted_known_pixels_prior(classify, images, masks), KNOWN_PIXELS_WEIGHT * prior)


def test_lower_loss_wins_and_the_runner_up_is_the_second_best():
    losses = np.array([[3.0, 1.0, 2.0], [1.0, 5.0, 4.0]])
    choice = choose_classes(losses, None, np.tile(np.arange(3), (2, 1)), prior_weight=0.2)
    np.testing.assert_array_equal(choice.classes, [1, 0])
    np.testing.assert_array_equal(choice.runner_up, [2, 2])
    np.testing.assert_array_equal(choice.order, [[1, 2, 0], [0, 2, 1]])
    np.testing.assert_allclose(choice.scores, np.log(losses))


def test_candidates_name_the_classes_of_the_columns():
    losses = np.array([[2.0, 1.0], [1.0, 2.0]])
    choice = choose_classes(losses, None, np.array([[7, 3], [4, 9]]))
    np.testing.assert_array_equal(choice.classes, [3, 4])
    np.testing.assert_array_equal(choice.runner_up, [7, 9])
    single = choose_classes(losses[:, :1], None, np.array([[7], [4]]))
    np.testing.assert_array_equal(single.classes, [7, 4])
    np.testing.assert_array_equal(single.runner_up, [-1, -1])


@pytest.mark.parametrize("prior_weight, expected", [(0.0, 0), (0.4, 0), (0.6, 1), (0.9, 1)])
def test_the_prior_shifts_the_choice_by_its_weight(prior_weight, expected):
    """Class 1's loss is e^0.5 times class 0's; the prior favours it by 1 nat: it wins once the weight passes 0.5."""
    losses = np.array([[1.0, np.exp(0.5), 10.0]])
    log_prior = np.array([[-2.0, -1.0, 0.0]])  # class 2: the prior's favourite, but far too costly
    choice = choose_classes(losses, None, np.array([[0, 1, 2]]), log_prior=log_prior, prior_weight=prior_weight)
    assert choice.classes[0] == expected and choice.runner_up[0] == 1 - expected
    np.testing.assert_allclose(choice.scores, np.log(losses) - prior_weight * log_prior)


def test_the_prior_is_read_at_the_candidates_classes():
    losses = np.ones((1, 2))
    log_prior = np.log([[0.1, 0.2, 0.3, 0.4]])
    choice = choose_classes(losses, None, np.array([[1, 3]]), log_prior=log_prior, prior_weight=1.0)
    assert choice.classes[0] == 3
    np.testing.assert_allclose(choice.scores, -log_prior[:, [1, 3]])


def test_consistency_classifies_each_completion_pasted_into_its_image():
    images, masks = _images_and_masks(n=2)
    generated = np.full(images.shape, 0.5, np.float32)
    seen = []

    def classify(x):  # class 0 when the hole holds G(z), class 1 otherwise
        seen.append(x)
        hole_mean = ((1 - masks) * x).sum(axis=(1, 2, 3)) / (1 - masks).sum(axis=(1, 2, 3))
        return np.stack([10.0 * (hole_mean > 0.49), np.zeros(len(x))], 1)

    log_p = consistency(classify, images, masks, generated, np.array([0, 1]))
    np.testing.assert_array_equal(seen[0], paste(images, generated, masks))
    assert log_p.shape == (2,) and log_p[0] > -1e-3 and log_p[1] < -9.0


def test_consistency_sees_only_the_block_means_of_a_lowres_input():
    images, _ = _images_and_masks(n=2)
    masks = np.ones(images.shape, np.float32)  # lowres: every pixel known, as block means
    seen = []
    classify = lambda x: seen.append(x) or np.zeros((len(x), 2))
    consistency(classify, images, masks, np.zeros_like(images), np.array([0, 0]), pool=4)
    np.testing.assert_allclose(seen[0], lowres_view(images, 4))
    assert not np.allclose(seen[0], images)


def test_the_classifier_on_each_completion_joins_the_ranking():
    images, masks = _images_and_masks(n=1)
    generated = [np.full(images.shape, v, np.float32) for v in (-0.5, 0.5)]  # columns' G(z), classes 0 and 1

    def classify(x):  # believes a bright hole is class 1 and a dark one class 0
        bright = ((1 - masks) * x).sum() > 0
        return np.array([[0.0, 8.0]]) if bright else np.array([[8.0, 0.0]])

    losses = np.array([[1.0, 1.5]])  # class 0 fits better
    candidates = np.array([[0, 1]])
    np.testing.assert_array_equal(choose_classes(losses, generated, candidates).classes, [0])
    both_agree = choose_classes(losses, generated, candidates, images=images, masks=masks, classify=classify,
                                prior_weight=0.2)
    assert both_agree.classes[0] == 0  # each completion looks like its own class: no change
    bright = [generated[1], generated[1]]  # class 0's completion now looks like a 1
    changed = choose_classes(losses, bright, candidates, images=images, masks=masks, classify=classify,
                             prior_weight=0.2)
    assert changed.classes[0] == 1 and changed.runner_up[0] == 0
    ignored = choose_classes(losses, bright, candidates, images=images, masks=masks, classify=classify,
                             prior_weight=0.0)
    assert ignored.classes[0] == 0
