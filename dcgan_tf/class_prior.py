"""A class prior for label-free completion with a conditional model: a classifier on the known pixels.

completion.Completer ranks a conditional model's classes by
    log(total loss) - prior_weight * (log p(c | completion with class c) + KNOWN_PIXELS_WEIGHT * log p(c | known)),
both probabilities from the classifier found here (dcgan_tf.classifier). This module gives the second: the
classifier looking at the known pixels, each hole filled by a smooth interpolation of the known pixels around it
(masks.smooth_fill, a normalised convolution), so that it sees an image rather than a grey hole or 80% grey noise.
A `lowres` mask has no hole, but the completion knows only block means: the classifier then sees those
(masks.lowres_view), never the full-resolution original.

`find_classifier` looks next to the run: `<checkpoints>/classifier_<dataset>_masked`, where
`python -m dcgan_tf.classifier --mask_augment 0.8` saves a classifier that has also learnt such filled images,
else the plain `<checkpoints>/classifier_<dataset>`.
"""

from __future__ import annotations

import json
import os

import numpy as np

from dcgan_tf.config import MASKED_CLASSIFIER_SUFFIX
from dcgan_tf.masks import lowres_view, smooth_fill

KNOWN_PIXELS_WEIGHT = 0.5  # the known-pixels prior's share, relative to each class's completion being classified


def log_softmax(logits) -> np.ndarray:
    """Row-wise log-probabilities of [N, K] logits (float64)."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def known_pixels_log_prior(classify, images, masks, pool: int = 1) -> np.ndarray:
    """log p(class | known pixels) [N, K]: classify ([N, H, W, C] -> [N, K] logits) on the smooth fill.

    pool: the completion's block size (masks.context_pool; > 1 for lowres): the classifier sees the block means.
    """
    return log_softmax(classify(smooth_fill(lowres_view(images, pool), masks)))


def find_classifier(checkpoint_dir: str, dataset: str) -> str | None:
    """The classifier saved next to the run: `<parent of checkpoint_dir>/classifier_<dataset>_masked` (trained
    with --mask_augment, so it knows images with holes) when there, else `classifier_<dataset>`, else None."""
    parent = os.path.dirname(os.path.abspath(checkpoint_dir))
    for suffix in (MASKED_CLASSIFIER_SUFFIX, ""):
        path = os.path.join(parent, f"classifier_{dataset}{suffix}")
        if os.path.isfile(os.path.join(path, "classifier.json")):
            return path
    return None


def trained_on_holes(path: str) -> bool:
    """Whether the classifier saved in folder `path` was trained with --mask_augment (its classifier.json)."""
    try:
        with open(os.path.join(path, "classifier.json")) as f:
            return bool(json.load(f).get("metadata", {}).get("mask_augment"))
    except (OSError, ValueError, AttributeError):
        return False


def weighted_known_pixels_prior(classify, images, masks, pool: int = 1) -> np.ndarray:
    """KNOWN_PIXELS_WEIGHT * known_pixels_log_prior: the class_prior that complete.py gives the Completer."""
    return KNOWN_PIXELS_WEIGHT * known_pixels_log_prior(classify, images, masks, pool)


def load_classify(classifier_dir: str, checkpoint_dir: str, dataset: str):
    """The classifier of the class prior as images -> logits, and its path; (None, None) without one.

    classifier_dir "" looks next to the run (find_classifier); "none" turns the prior off.
    """
    path = find_classifier(checkpoint_dir, dataset) if classifier_dir == "" else (
        None if classifier_dir == "none" else classifier_dir)
    if path is None:
        return None, None
    from dcgan_tf.classifier import load_classifier, predict_logits  # Keras model code only when used

    model = load_classifier(path)
    return (lambda images: predict_logits(model, images)), path
