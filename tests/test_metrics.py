"""Tests for dcgan_tf.metrics: Frechet distance, KID, feature extractors, the statistics cache and the
completion scores (PSNR, SSIM over a hole)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan_tf import metrics
from dcgan_tf.classifier import build_classifier
from dcgan_tf.errors import FlagError


def _random_spd(rng, d, n=None):
    a = rng.normal(size=(d, n or 2 * d))
    return a @ a.T / a.shape[1]


# --------------------------------------------------------------------------------------------------------------
# Frechet distance


def test_fd_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(300, 8))
    assert metrics.fid_from_features(features, features) == pytest.approx(0.0, abs=1e-9)


def test_fd_diagonal_gaussians_match_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3.0, size=6), rng.uniform(0.1, 3.0, size=6)
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_fd_full_covariance_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    d = 24
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy_linalg.sqrtm(s1 @ s2).real)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fd_rank_deficient_covariance_is_finite():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(10, 50)), rng.normal(size=(12, 50))  # fewer samples than dims: singular covariances
    assert np.linalg.matrix_rank(metrics.feature_statistics(a)[1]) < 50
    assert metrics.fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)
    fd = metrics.fid_from_features(a, b)
    assert np.isfinite(fd) and fd > 0


def test_fd_with_zero_covariance_is_the_mean_distance():
    zeros = np.zeros((3, 3))
    assert metrics.frechet_distance(np.zeros(3), zeros, np.ones(3), zeros) == pytest.approx(3.0)


def test_fd_rejects_bad_statistics():
    with pytest.raises(ValueError, match="sizes differ"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="covariance"):
        metrics.frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(np.zeros(2), np.full((2, 2), np.nan), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.feature_statistics(np.zeros((1, 4)))


def _blob_images(rng, n):
    """Smooth random blobs in [-1, 1], [n, 28, 28, 1]: a stand-in for real images."""
    yy, xx = np.mgrid[0:28, 0:28]
    centres = rng.uniform(6, 22, size=(n, 2))
    radius = rng.uniform(3, 8, size=(n, 1, 1))
    d2 = (yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2
    return (2 * np.exp(-d2 / (2 * radius ** 2)) - 1)[..., None].astype(np.float32)


def test_fd_grows_monotonically_with_noise():
    rng = np.random.default_rng(4)
    images = _blob_images(rng, 400)
    extractor = metrics.ClassifierFeatures(build_classifier(filters=4, feature_dim=16, seed=0))
    reference = extractor(images)
    fds = []
    for sigma in (0.0, 0.1, 0.2, 0.4, 0.8):
        noisy = np.clip(images + sigma * rng.normal(size=images.shape), -1, 1).astype(np.float32)
        fds.append(metrics.fid_from_features(reference, extractor(noisy)))
    assert fds[0] == pytest.approx(0.0, abs=1e-6)
    assert all(a < b for a, b in zip(fds, fds[1:])), fds


# --------------------------------------------------------------------------------------------------------------
# KID


def test_kid_same_distribution_is_near_zero_and_shift_is_not():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    same_mean, same_std = metrics.kernel_inception_distance(x, y, num_subsets=20, subset_size=300)
    shifted_mean, _ = metrics.kernel_inception_distance(x, y + 0.5, num_subsets=20, subset_size=300)
    assert abs(same_mean) < 0.02 and same_std > 0
    assert shifted_mean > 0.2


def _mmd2_by_hand(x, y):
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_matches_hand_computation():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    y = np.array([[0.5, 0.5], [-1.0, 0.0], [2.0, 1.0]])
    # Subsets as large as the sets are permutations of them, and MMD^2 does not depend on the order.
    mean, std = metrics.kernel_inception_distance(x, y, num_subsets=3, subset_size=10)
    assert mean == pytest.approx(_mmd2_by_hand(x, y), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_seeded_and_validates():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(60, 4))
    assert metrics.kernel_inception_distance(x, y, num_subsets=5, subset_size=20, seed=1) == \
        metrics.kernel_inception_distance(x, y, num_subsets=5, subset_size=20, seed=1)
    with pytest.raises(ValueError):
        metrics.kernel_inception_distance(x, y[:, :3])
    with pytest.raises(ValueError):
        metrics.kernel_inception_distance(x[:1], y)


# --------------------------------------------------------------------------------------------------------------
# Feature extractors


def test_classifier_features_shape_batches_and_name():
    model = build_classifier(filters=4, feature_dim=16, seed=0)
    extractor = metrics.ClassifierFeatures(model, batch_size=7)
    images = _blob_images(np.random.default_rng(7), 20)
    features = extractor(images)
    assert features.shape == (20, 16)
    np.testing.assert_allclose(features, model.features(images, training=False).numpy(), rtol=1e-5, atol=1e-6)
    other = metrics.ClassifierFeatures(build_classifier(filters=4, feature_dim=16, seed=1))
    assert extractor.name.startswith("classifier_") and extractor.name != other.name


def test_extractor_rejects_images_outside_the_gan_range():
    extractor = metrics.ClassifierFeatures(build_classifier(filters=4, feature_dim=16))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        extractor(np.full((2, 28, 28, 1), 255, np.uint8))
    with pytest.raises(ValueError, match="shape"):
        extractor(np.zeros((28, 28, 1), np.float32))


def test_inception_missing_weights_names_the_flag(tmp_path):
    with pytest.raises(FlagError, match="never downloads") as e:
        metrics.InceptionFeatures(str(tmp_path / "missing.weights.h5"))
    assert e.value.flag == "fid_weights"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # Keras warns about each layer it cannot fill
def test_inception_wrong_weights_file_names_the_flag(tmp_path):
    stand_in = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = str(tmp_path / "tiny.weights.h5")
    stand_in.save_weights(path)
    with pytest.raises(FlagError, match="could not load") as e:
        metrics.InceptionFeatures(path, input_size=75)
    assert e.value.flag == "fid_weights"


@pytest.mark.slow
def test_inception_loads_local_weights_and_preprocesses(tmp_path):
    # The real architecture at its smallest input size; the weights file is the full ~88 MB either way.
    source = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                            input_shape=(75, 75, 3))
    path = str(tmp_path / "inception.weights.h5")
    source.save_weights(path)
    extractor = metrics.InceptionFeatures(path, input_size=75, batch_size=3)
    images = _blob_images(np.random.default_rng(8), 4)  # grayscale 28x28
    features = extractor(images)
    expected = source(tf.image.resize(np.repeat(images, 3, axis=-1), (75, 75)), training=False).numpy()
    assert features.shape == (4, 2048)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    assert extractor.name.startswith("inception_v3_75px_")


# --------------------------------------------------------------------------------------------------------------
# Statistics cache


def test_real_statistics_are_computed_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return metrics.feature_statistics(np.random.default_rng(9).normal(size=(30, 3)))

    key = {"dataset": "blobs", "extractor": "x", "num_images": 30}
    mu1, sigma1 = metrics.real_statistics_cached(str(tmp_path / "cache"), key, compute)
    mu2, sigma2 = metrics.real_statistics_cached(str(tmp_path / "cache"), dict(reversed(key.items())), compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(mu1, mu2)
    np.testing.assert_array_equal(sigma1, sigma2)
    metrics.real_statistics_cached(str(tmp_path / "cache"), {**key, "num_images": 31}, compute)
    assert len(calls) == 2
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".npz", ".npz"]  # no temporary files


def test_damaged_cache_file_is_recomputed(tmp_path):
    compute = lambda: (np.zeros(2), np.eye(2))
    path = metrics.cache_path(str(tmp_path), "key", "stats")
    os.makedirs(tmp_path, exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"half a file")
    mu, sigma = metrics.real_statistics_cached(str(tmp_path), "key", compute)
    np.testing.assert_array_equal(sigma, np.eye(2))
    with np.load(path) as f:
        assert str(f["key"]) == '"key"'


# --------------------------------------------------------------------------------------------------------------
# Completion scores


def test_psnr_over_the_hole():
    a = np.zeros((4, 4, 1), np.float32)
    b = a.copy()
    b[0, 0] = 0.2  # error 0.1 on the [0, 1] scale at one of the two hole pixels
    hole = np.zeros((4, 4, 1))
    hole[0, :2] = 1
    assert metrics.psnr(a, b, hole) == pytest.approx(10 * np.log10(1 / (0.01 / 2)))
    assert metrics.psnr(a, a, hole) == metrics.MAX_PSNR and np.isnan(metrics.psnr(a, b, np.zeros_like(hole)))


def test_ssim_map_matches_tf_image_ssim_away_from_the_border():
    rng = np.random.RandomState(3)
    a = np.repeat(np.repeat(rng.uniform(-1, 1, (8, 8, 3)), 2, axis=0), 2, axis=1).astype(np.float32)  # 16x16
    b = 0.5 * a + 0.5 * np.repeat(np.repeat(rng.uniform(-1, 1, (8, 8, 3)), 2, axis=0), 2, axis=1).astype(np.float32)
    expected = tf.image.ssim((a + 1) / 2, (b + 1) / 2, max_val=1.0, filter_size=11, filter_sigma=1.5).numpy()
    assert metrics.ssim_map(a, b).shape == a.shape
    assert metrics.ssim_map(a, b)[5:-5, 5:-5].mean() == pytest.approx(expected, abs=1e-5)
    assert metrics.ssim(a, a, np.ones((16, 16, 1))) == pytest.approx(1.0)
    assert metrics.ssim(a, b, np.ones((16, 16, 1))) < 0.9 and np.isnan(metrics.ssim(a, b, np.zeros((16, 16, 1))))


def test_hole_scores_score_the_written_8bit_image_over_each_hole():
    rng = np.random.RandomState(4)
    originals = rng.uniform(-1, 1, (2, 6, 6, 1)).astype(np.float32)
    completed = originals + rng.uniform(-0.3, 0.3, originals.shape).astype(np.float32)
    hole = np.zeros((2, 6, 6, 1))
    hole[:, 1:4, 1:4] = 1
    psnrs, ssims = metrics.hole_scores(originals, completed, hole)
    written = np.round((np.clip(completed, -1, 1) + 1) * 127.5) / 127.5 - 1  # what the 8-bit PNG holds
    for i in range(2):
        assert psnrs[i] == pytest.approx(metrics.psnr(originals[i], written[i], hole[i]), rel=1e-6)
        assert ssims[i] == pytest.approx(metrics.ssim(originals[i], written[i], hole[i]), rel=1e-6)
    elsewhere = np.where(hole > 0, completed, -completed)  # other pixels outside the hole: the PSNR ignores them
    np.testing.assert_array_equal(metrics.hole_scores(originals, elsewhere, hole)[0], psnrs)  # (SSIM's window not)
    assert np.isnan(metrics.hole_scores(None, completed, hole)).all()
