"""The label-free class choice of a conditional model: how candidate classes are scored and ranked.

Without labels, completion (completion.Completer) runs each candidate class c for a while and ranks the classes by
    log(total loss of c) - prior_weight * (log p(c | completion with c) + KNOWN_PIXELS_WEIGHT * log p(c | known)),
lower is better. The log makes the prior's weight independent of the loss's scale (image size, mask, --lam); both
probabilities come from a classifier (dcgan_tf.class_prior finds it):
  * consistency, log p(c | completion with c): the classifier on the image with class c's G(z) pasted into the
    hole (does class c's completion look like a c?);
  * the known-pixels prior, log p(c | known): the classifier on the known pixels, each hole filled by a smooth
    interpolation of the known pixels around it (masks.smooth_fill), so that it sees an image rather than a grey
    hole.
A `lowres` mask has no hole, but the completion knows only block means: the classifier then sees those
(masks.lowres_view), never the full-resolution original.

Everything here is a pure NumPy function of losses, images and a classifier (images -> logits); the z search that
produces the losses stays in completion.py.

Example:
    >>> prior = weighted_known_pixels_prior(classify, images, masks)  # doctest: +SKIP
    >>> choice = choose_classes(pilot_losses, pilot_generated, candidates, images=images, masks=masks,
    ...                         classify=classify, log_prior=prior)  # doctest: +SKIP
    >>> choice.classes, choice.runner_up  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dcgan_tf.blend import paste
from dcgan_tf.config import DEFAULT_PRIOR_WEIGHT
from dcgan_tf.masks import lowres_view, smooth_fill

KNOWN_PIXELS_WEIGHT = 0.5  # the known-pixels prior's share, relative to each class's completion being classified
MIN_LOSS = 1e-12  # losses are clipped here before their log


def log_softmax(logits) -> np.ndarray:
    """Row-wise log-probabilities of logits.

    Args:
      logits: [N, K] logits.

    Returns:
      float64 [N, K] whose rows' exponentials sum to 1.
    """
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def known_pixels_log_prior(classify, images, masks, pool: int = 1) -> np.ndarray:
    """log p(class | known pixels): the classifier on the smooth fill of each hole.

    Args:
      classify: images [N, H, W, C] -> logits [N, K].
      images: [N, H, W, C] in [-1, 1].
      masks: [N, H, W, 1], 1 = known.
      pool: the completion's block size (masks.context_pool; > 1 for lowres): the classifier sees the block means.

    Returns:
      float64 [N, K].
    """
    return log_softmax(classify(smooth_fill(lowres_view(images, pool), masks)))


def weighted_known_pixels_prior(classify, images, masks, pool: int = 1) -> np.ndarray:
    """KNOWN_PIXELS_WEIGHT * known_pixels_log_prior: the class prior that completion gives the class choice.

    Args:
      classify, images, masks, pool: see known_pixels_log_prior.

    Returns:
      float64 [N, K].
    """
    return KNOWN_PIXELS_WEIGHT * known_pixels_log_prior(classify, images, masks, pool)


def consistency(classify, images, masks, generated, classes, pool: int = 1) -> np.ndarray:
    """log p(classes | the images with G(z) pasted into their holes): does each completion look like its class?

    Args:
      classify: images [n, H, W, C] -> logits [n, K].
      images: [n, H, W, C] in [-1, 1], the completed images' inputs.
      masks: [n, H, W, 1], 1 = known.
      generated: [n, H, W, C] G(z) of each image.
      classes: [n] the class each G(z) was made with.
      pool: the completion's block size; > 1 (lowres): the known pixels are their block means, all the completion
        knows of them.

    Returns:
      float64 [n].
    """
    log_p = log_softmax(classify(paste(lowres_view(images, pool), generated, masks)))
    return log_p[np.arange(len(classes)), classes]


def class_scores(losses, log_prior=None, prior_weight: float = 0.0) -> np.ndarray:
    """Scores of candidate classes, lower is better: log(total loss) - prior_weight * log p(class).

    Args:
      losses: [N, K] final total losses of K candidate classes (positive; clipped at MIN_LOSS).
      log_prior: [N, K] log-probabilities of those classes, or None (then the losses alone decide).
      prior_weight: weight of the prior.

    Returns:
      float64 [N, K].
    """
    scores = np.log(np.maximum(np.asarray(losses, np.float64), MIN_LOSS))
    if log_prior is None or not prior_weight:
        return scores
    return scores - prior_weight * np.asarray(log_prior, np.float64)


@dataclasses.dataclass(frozen=True)
class ClassChoice:
    """The ranking of n images' candidate classes (K columns)."""

    classes: np.ndarray  # [n] the best class of each image
    runner_up: np.ndarray  # [n] the second-best class (-1 with a single candidate)
    order: np.ndarray  # [n, K] candidate columns, best first
    scores: np.ndarray  # float64 [n, K] class_scores of the candidates, lower is better


def choose_classes(losses, generated, candidates, *, images=None, masks=None, classify=None, log_prior=None,
                   prior_weight: float = DEFAULT_PRIOR_WEIGHT, pool: int = 1) -> ClassChoice:
    """Ranks each image's candidate classes by class_scores of their completions' losses and the classifier.

    Args:
      losses: [n, K] total loss of each image's completion with each candidate class.
      generated: K arrays [n, H, W, C], those completions' G(z); read only when classify is given.
      candidates: [n, K] the class ids of the columns of losses.
      images: [n, H, W, C] in [-1, 1], the images completed (for classify).
      masks: [n, H, W, 1], 1 = known (for classify).
      classify: images -> logits [n, y_dim], or None: no consistency term.
      log_prior: [n, y_dim] log-probabilities of every class (e.g. weighted_known_pixels_prior), or None.
      prior_weight: weight of the classifier's terms against log(total loss); 0 = the losses alone.
      pool: the completion's block size (see consistency).

    Returns:
      a ClassChoice.
    """
    candidates = np.asarray(candidates)
    n, k = candidates.shape
    rows = np.arange(n)
    log_p = np.zeros((n, k))  # log p(c | completion with c), one classifier call per column
    if classify is not None:
        for j in range(k):
            log_p[:, j] = consistency(classify, images, masks, generated[j], candidates[:, j], pool)
    if log_prior is not None:
        log_p = np.take_along_axis(np.asarray(log_prior, np.float64), candidates, 1) + log_p
    scores = class_scores(losses, log_p, prior_weight)
    order = np.argsort(scores, axis=1, kind="stable")
    runner_up = candidates[rows, order[:, 1]] if k > 1 else np.full(n, -1)
    return ClassChoice(classes=candidates[rows, order[:, 0]], runner_up=runner_up, order=order, scores=scores)
