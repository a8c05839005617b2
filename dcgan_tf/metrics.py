"""Quality metrics: Frechet distance (FID), kernel inception distance (KID) and feature extractors for samples;
PSNR and SSIM over the hole for completions.

The maths is plain NumPy in float64 and never imports SciPy: the matrix square root in the Frechet distance is
taken through a symmetric eigendecomposition, which stays finite for the rank-deficient covariances that small
sample sets give. Features come from a `FeatureExtractor`:

* `InceptionFeatures`: the 2048-d pool features of InceptionV3, loaded from a weights file the user already has
  (this toolkit never downloads weights); the usual FID.
* `ClassifierFeatures`: the penultimate layer of the small MNIST / Fashion-MNIST classifier in
  `dcgan_tf.classifier`; a "domain FID" that needs no external weights.

Real-data statistics are cached on disk under a hash of everything that determines them
(`real_statistics_cached`), so they are computed once per dataset, extractor and options; `arrays_cached` does the
same for any named arrays, such as the subsample of real features that KID needs.

A completion is scored against the original pixels of its hole (`hole_scores`: `psnr` and `ssim`, the SSIM map of
Wang et al. 2004 averaged over the hole), on the 8-bit image it is written as.

Example:
    extractor = ClassifierFeatures(load_classifier("checkpoints/classifier_fashion_mnist"))
    mu, sigma = real_statistics_cached("out/fid_cache", {"dataset": "fashion_mnist", "split": "test",
                                                         "extractor": extractor.name},
                                       lambda: feature_statistics(extractor(real_images)))
    fid = frechet_distance(*feature_statistics(extractor(fake_images)), mu, sigma)
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dcgan_tf.atomic import atomic_path
from dcgan_tf.errors import FlagError
from dcgan_tf.images import as_written
from dcgan_tf.masks import gaussian_blur

# --------------------------------------------------------------------------------------------------------------
# Frechet distance


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; round-off negative eigenvalues become 0."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(sigma1 @ sigma2)) for symmetric PSD matrices.

    sigma1 @ sigma2 is not symmetric, so a general sqrtm of it can return complex values and NaNs when it is
    near-singular. It has the same eigenvalues as the symmetric PSD matrix sqrt(s1) @ s2 @ sqrt(s1), whose
    eigenvalues eigvalsh computes stably; the trace of the square root is the sum of their square roots.
    """
    root1 = _sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    middle = (middle + middle.T) / 2  # symmetric up to round-off; make it exactly so for eigvalsh
    w = np.linalg.eigvalsh(middle)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def _check_statistics(mu: np.ndarray, sigma: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{which}: mean of shape {mu.shape} needs a covariance of shape "
                         f"{(mu.shape[0], mu.shape[0])}, got {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{which}: statistics contain NaN or inf")
    return mu, sigma


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), in float64.

    Args:
      mu1: mean of the first set of features, [D].
      sigma1: covariance of the first set, [D, D], symmetric PSD (rank-deficient is fine).
      mu2: mean of the second set, [D].
      sigma2: covariance of the second set, [D, D].
      eps: if the eigendecomposition fails to converge on a (near-)singular product, it is retried with
        eps * I added to both covariances, as the reference FID code does.

    Returns:
      The squared distance as a float >= 0 (round-off below 0 is clipped).

    Raises:
      ValueError: on mismatched shapes or non-finite statistics.
    """
    mu1, sigma1 = _check_statistics(mu1, sigma1, "first set")
    mu2, sigma2 = _check_statistics(mu2, sigma2, "second set")
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature sizes differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    try:
        tr_covmean = _trace_sqrt_product(sigma1, sigma2)
    except np.linalg.LinAlgError:
        offset = eps * np.eye(sigma1.shape[0])
        tr_covmean = _trace_sqrt_product(sigma1 + offset, sigma2 + offset)
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(fd, 0.0)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64, N - 1 normalisation) of features [N, D], N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features of shape [N >= 2, D], got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Frechet distance between the Gaussian fits of two feature sets [N1, D] and [N2, D]."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


# --------------------------------------------------------------------------------------------------------------
# Kernel inception distance


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for all pairs of rows, [Nx, Ny]."""
    k = x @ y.T
    k /= x.shape[1]
    k += 1.0
    return k * k * k  # several times faster than ** 3, which goes through pow()


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of MMD^2 between two equal-sized samples x, y [m, D] with the cubic kernel.

    (sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2.
    """
    m = x.shape[0]
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    k_xy = _polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(features1: np.ndarray, features2: np.ndarray, *, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: the unbiased MMD^2 with a cubic polynomial kernel, averaged over random subsets.

    Args:
      features1: features of the first set, [N1, D].
      features2: features of the second set, [N2, D].
      num_subsets: number of random subset pairs to average over.
      subset_size: images per subset, capped by min(N1, N2); subsets are drawn without replacement.
      seed: seeds the subset draws.

    Returns:
      (mean, std) of the per-subset estimates. The mean is unbiased, so it can be slightly negative when the
      sets come from the same distribution.
    """
    x_all = np.asarray(features1, dtype=np.float64)
    y_all = np.asarray(features2, dtype=np.float64)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"need features [N1, D] and [N2, D], got {x_all.shape} and {y_all.shape}")
    m = min(subset_size, x_all.shape[0], y_all.shape[0])
    if m < 2 or num_subsets < 1:
        raise ValueError(f"need subsets of >= 2 images and num_subsets >= 1, got {m} and {num_subsets}")
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(num_subsets):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        estimates.append(mmd2_unbiased(x, y))
    return float(np.mean(estimates)), float(np.std(estimates))


# --------------------------------------------------------------------------------------------------------------
# Feature extractors


class FeatureExtractor(abc.ABC):
    """Maps images float32 [N, H, W, C] in [-1, 1] to features [N, D], in batches.

    Subclasses set `name` (it goes into cache keys, so it must change whenever the features would) and
    implement `extract_batch`.
    """

    name: str
    batch_size: int = 100

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features [N, D] (float32) of images [N, H, W, C] in [-1, 1]."""
        images = _check_images(images)
        batches = [np.asarray(self.extract_batch(images[i:i + self.batch_size]))
                   for i in range(0, images.shape[0], self.batch_size)]
        return np.concatenate(batches, axis=0)

    @abc.abstractmethod
    def extract_batch(self, images: np.ndarray) -> np.ndarray:
        """Features [n, D] of one batch of images [n, H, W, C] in [-1, 1]."""


def _check_images(images: np.ndarray) -> np.ndarray:
    """float32 [N, H, W, C] with N >= 1 and values in [-1, 1] (a little slack for round-off), else ValueError."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"need images of shape [N >= 1, H, W, C], got {images.shape}")
    if images.dtype == np.uint8 or images.min() < -1.01 or images.max() > 1.01:
        raise ValueError(f"need images in [-1, 1] (the GAN's range), got dtype {images.dtype} with values in "
                         f"[{images.min()}, {images.max()}]")
    return images.astype(np.float32, copy=False)


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class InceptionFeatures(FeatureExtractor):
    """2048-d average-pool features of InceptionV3 (the FID network) from a local weights file.

    The weights file must hold InceptionV3 with include_top=False: either Keras' own
    `inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5` or the output of
    `keras.applications.InceptionV3(include_top=False, pooling="avg").save_weights("inception.weights.h5")`
    run once on a machine with network access. Nothing is ever downloaded here.
    """

    def __init__(self, weights_path: str, *, input_size: int = 299, batch_size: int = 50):
        """Builds InceptionV3 and loads the weights.

        Args:
          weights_path: the local weights file (the `--fid_weights` flag).
          input_size: images are resized to input_size x input_size; 299 is the standard FID protocol, and
            InceptionV3 needs >= 75.
          batch_size: images per forward pass.

        Raises:
          FlagError: naming fid_weights when the file is missing or does not fit InceptionV3.
        """
        if not weights_path or not os.path.isfile(weights_path):
            raise FlagError("fid_weights", f"no InceptionV3 weights file at {weights_path!r}; pass a local "
                                           "include_top=False InceptionV3 weights file (.h5 or .weights.h5); "
                                           "this toolkit never downloads weights")
        if input_size < 75:
            raise ValueError(f"InceptionV3 needs input_size >= 75, got {input_size}")
        self.input_size = input_size
        self.batch_size = batch_size
        self.model = keras.applications.InceptionV3(
            include_top=False, pooling="avg", weights=None, input_shape=(input_size, input_size, 3))
        try:
            self.model.load_weights(weights_path)
        except Exception as e:  # Keras raises ValueError, KeyError or OSError depending on the mismatch.
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise FlagError("fid_weights", f"could not load {weights_path!r} into InceptionV3 "
                                           f"(include_top=False): {reason}") from e
        self.name = f"inception_v3_{input_size}px_{_file_sha256(weights_path)[:12]}"
        self._forward = tf.function(self._resize_and_run, reduce_retracing=True)

    def _resize_and_run(self, images: tf.Tensor) -> tf.Tensor:
        # [-1, 1] is already the range inception_v3.preprocess_input produces.
        images = tf.image.resize(images, (self.input_size, self.input_size), method="bilinear")
        return self.model(images, training=False)

    def extract_batch(self, images: np.ndarray) -> np.ndarray:
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)  # grayscale -> RGB
        if images.shape[-1] != 3:
            raise ValueError(f"InceptionV3 needs 1 or 3 channels, got {images.shape[-1]}")
        return self._forward(tf.constant(images)).numpy()


def _weights_sha1(model: keras.Model) -> str:
    digest = hashlib.sha1()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


class ClassifierFeatures(FeatureExtractor):
    """Penultimate-layer features of a `dcgan_tf.classifier.Classifier` (a "domain FID" for 28x28x1 data)."""

    def __init__(self, model: keras.Model, *, batch_size: int = 500):
        """Wraps a classifier with a `features(x, training=False)` method.

        Args:
          model: the classifier; built here on a dummy batch if it is not yet.
          batch_size: images per forward pass.
        """
        if not model.built:
            model(np.zeros((1, 28, 28, 1), np.float32), training=False)
        self.model = model
        self.batch_size = batch_size
        # The weights' hash makes cached statistics of a retrained classifier distinct.
        self.name = f"classifier_{_weights_sha1(model)[:12]}"
        self._forward = tf.function(lambda x: model.features(x, training=False), reduce_retracing=True)

    def extract_batch(self, images: np.ndarray) -> np.ndarray:
        return self._forward(tf.constant(images)).numpy()


# --------------------------------------------------------------------------------------------------------------
# Cached real-data statistics and features


def cache_path(cache_dir: str, key: str | Mapping[str, Any], prefix: str = "stats") -> str:
    """The .npz file that holds the cached arrays for key (a string or a JSON-able mapping of options)."""
    key_json = _key_json(key)
    return os.path.join(cache_dir, f"{prefix}-{hashlib.sha256(key_json.encode()).hexdigest()[:20]}.npz")


def _key_json(key: str | Mapping[str, Any]) -> str:
    return json.dumps(key if isinstance(key, str) else dict(key), sort_keys=True, default=str)


def _read_cached(path: str, key_json: str) -> dict[str, np.ndarray] | None:
    """The cached arrays by name, or None when the file is absent, unreadable or holds another key."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as f:
            if str(f["key"]) != key_json:
                return None
            return {name: f[name] for name in f.files if name != "key"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # a damaged cache file is recomputed and overwritten


def _write_cached(path: str, key_json: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Writes to a temporary file and renames it into place, so readers never see half a file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez appends no ".npz"
        np.savez(f, key=np.array(key_json), **arrays)


def arrays_cached(cache_dir: str, key: str | Mapping[str, Any],
                  compute_fn: Callable[[], Mapping[str, np.ndarray]], *, prefix: str = "arrays"
                  ) -> dict[str, np.ndarray]:
    """Named arrays (e.g. real features and their statistics), computed once and then read from cache_dir.

    Args:
      cache_dir: folder of the cache files (created when needed).
      key: everything that determines the arrays; the file name is a hash of it and the file stores it in full.
      compute_fn: computes {name: array} when the cache has no entry for key ("key" is not a valid name).
      prefix: start of the file name, so different kinds of cached data never share a file.

    Returns:
      {name: array} as compute_fn returned it (read back from the .npz file on a cache hit).
    """
    key_json = _key_json(key)
    path = cache_path(cache_dir, key, prefix)
    cached = _read_cached(path, key_json)
    if cached is not None:
        return cached
    arrays = {name: np.asarray(a) for name, a in compute_fn().items()}
    _write_cached(path, key_json, arrays)
    return arrays


def real_statistics_cached(cache_dir: str, key: str | Mapping[str, Any],
                           compute_fn: Callable[[], tuple[np.ndarray, np.ndarray]]
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of real data, computed once and then read from cache_dir.

    Args:
      cache_dir: folder of the cache files (created when needed).
      key: everything that determines the statistics, e.g. {"dataset": ..., "split": ..., "num_images": ...,
        "extractor": extractor.name}; the file name is a hash of it and the file stores it in full.
      compute_fn: computes (mu, sigma) when the cache has no entry for key.

    Returns:
      (mu [D], sigma [D, D]) as float64.
    """

    def compute() -> dict[str, np.ndarray]:
        mu, sigma = (np.asarray(a, dtype=np.float64) for a in compute_fn())
        _check_statistics(mu, sigma, "computed statistics")
        return {"mu": mu, "sigma": sigma}

    arrays = arrays_cached(cache_dir, key, compute, prefix="stats")
    return arrays["mu"], arrays["sigma"]


# --------------------------------------------------------------------------------------------------------------
# Completion scores against the original pixels

MAX_PSNR = 100.0  # dB reported for a perfect match


def _scored_pixels(original, region) -> np.ndarray | None:
    """region > 0 broadcast over original's [H, W, C] (all channels), or None for an empty region."""
    weight = np.broadcast_to(np.asarray(region) > 0, np.shape(original))
    return weight if weight.any() else None


def psnr(original, completed, region) -> float:
    """PSNR in dB over the pixels where region > 0 (all channels), images in [-1, 1] read as [0, 1].

    Args:
      original, completed: [H, W, C] in [-1, 1].
      region: [H, W, 1] (or broadcastable), > 0 at the pixels scored.

    Returns:
      the PSNR, capped at MAX_PSNR for a perfect match; NaN when the region is empty.
    """
    weight = _scored_pixels(original, region)
    if weight is None:
        return float("nan")
    err = (np.asarray(completed, np.float64) - np.asarray(original, np.float64)) / 2.0
    mse = float(np.sum(err ** 2 * weight) / np.sum(weight))
    return MAX_PSNR if mse <= 10 ** (-MAX_PSNR / 10) else float(10 * np.log10(1.0 / mse))


def ssim_map(original, completed, *, filter_size: int = 11, sigma: float = 1.5, k1: float = 0.01,
             k2: float = 0.03) -> np.ndarray:
    """Per-pixel, per-channel SSIM (Wang et al. 2004) of two images in [-1, 1] (read as [0, 1]).

    Local statistics use an 11x11 Gaussian window (sigma 1.5) renormalised at the border, so the map has the
    image's size; away from the border it equals the map that tf.image.ssim averages.

    Args:
      original, completed: [H, W, C] in [-1, 1].
      filter_size: the Gaussian window's side.
      sigma: the Gaussian's standard deviation in pixels.
      k1, k2: SSIM's stabilising constants (relative to the [0, 1] range).

    Returns:
      float64 [H, W, C].
    """
    a = (np.asarray(original, np.float64) + 1.0) / 2.0
    b = (np.asarray(completed, np.float64) + 1.0) / 2.0
    blur = lambda x: gaussian_blur(x, sigma, filter_size // 2)
    norm = blur(np.ones_like(a))
    mean = lambda x: blur(x) / norm
    mu_a, mu_b = mean(a), mean(b)
    var_a, var_b = mean(a * a) - mu_a ** 2, mean(b * b) - mu_b ** 2
    cov = mean(a * b) - mu_a * mu_b
    c1, c2 = k1 ** 2, k2 ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(original, completed, region) -> float:
    """The SSIM map averaged over the pixels where region > 0 (all channels).

    Args:
      original, completed: [H, W, C] in [-1, 1].
      region: [H, W, 1] (or broadcastable), > 0 at the pixels scored.

    Returns:
      the mean of ssim_map over the region; NaN for an empty region.
    """
    weight = _scored_pixels(original, region)
    if weight is None:
        return float("nan")
    return float(ssim_map(original, completed)[weight].mean())


def hole_scores(originals, completed, hole) -> tuple[np.ndarray, np.ndarray]:
    """PSNR and SSIM of each completion over its hole, as the 8-bit image it is written as holds it.

    Args:
      originals: [N, H, W, C] in [-1, 1], or None (then both are NaN).
      completed: [N, H, W, C] in [-1, 1].
      hole: [N, H, W, 1], > 0 where the completion took G(z).

    Returns:
      (psnr [N], ssim [N]) as float64.
    """
    n = len(completed)
    if originals is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    written = as_written(completed)
    originals = np.asarray(originals, np.float32)
    return (np.array([psnr(o, c, h) for o, c, h in zip(originals, written, hole)]),
            np.array([ssim(o, c, h) for o, c, h in zip(originals, written, hole)]))
