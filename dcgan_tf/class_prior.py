"""The classifier behind the label-free class choice of a conditional model: where it is and how it is loaded.

class_choice.py ranks a conditional model's classes with a classifier (dcgan_tf.classifier) on each class's
completion and on the known pixels; this module finds and loads that classifier.

`find_classifier` looks next to the run: `<checkpoints>/classifier_<dataset>_masked`, where
`python -m dcgan_tf.classifier --mask_augment 0.8` saves a classifier that has also learnt images whose holes are
filled smoothly (what the known-pixels prior shows it), else the plain `<checkpoints>/classifier_<dataset>`.
"""

from __future__ import annotations

import json
import os

from dcgan_tf.config import MASKED_CLASSIFIER_SUFFIX


def find_classifier(checkpoint_dir: str, dataset: str) -> str | None:
    """The classifier saved next to the run.

    Args:
      checkpoint_dir: the run's checkpoint folder.
      dataset: the run's dataset name.

    Returns:
      `<parent of checkpoint_dir>/classifier_<dataset>_masked` (trained with --mask_augment, so it knows images
      with holes) when there, else `classifier_<dataset>`, else None.
    """
    parent = os.path.dirname(os.path.abspath(checkpoint_dir))
    for suffix in (MASKED_CLASSIFIER_SUFFIX, ""):
        path = os.path.join(parent, f"classifier_{dataset}{suffix}")
        if os.path.isfile(os.path.join(path, "classifier.json")):
            return path
    return None


def trained_on_holes(path: str) -> bool:
    """Whether the classifier saved in a folder was trained with --mask_augment.

    Args:
      path: the classifier's folder.

    Returns:
      its classifier.json's mask_augment setting as a bool; False when unreadable.
    """
    try:
        with open(os.path.join(path, "classifier.json")) as f:
            return bool(json.load(f).get("metadata", {}).get("mask_augment"))
    except (OSError, ValueError, AttributeError):
        return False


def load_classify(classifier_dir: str, checkpoint_dir: str, dataset: str):
    """The classifier of the class choice as images -> logits, and its path.

    Args:
      classifier_dir: --classifier_dir: a folder; "" looks next to the run (find_classifier); "none" turns the
        classifier off.
      checkpoint_dir, dataset: the run's, for find_classifier.

    Returns:
      (classify, path), or (None, None) without a classifier.
    """
    path = find_classifier(checkpoint_dir, dataset) if classifier_dir == "" else (
        None if classifier_dir == "none" else classifier_dir)
    if path is None:
        return None, None
    from dcgan_tf.classifier import load_classifier, predict_logits  # Keras model code only when used

    model = load_classifier(path)
    return (lambda images: predict_logits(model, images)), path
