"""Tests of dcgan_tf.blend: Poisson blending against a dense least-squares solve, and known pixels kept."""

import numpy as np
import pytest

from dcgan_tf.blend import PoissonBlender, blend_images, paste, poisson_blend


def dense_poisson(target, generated, known):
    """The same minimisation written independently: one least-squares row per neighbour pair touching the hole,
    x_p - x_q = g_p - g_q, with known pixels moved to the right side; solved densely."""
    h, w, c = target.shape
    hole = known[..., 0] < 0.5
    unknown = np.flatnonzero(hole.ravel())
    slot = {p: i for i, p in enumerate(unknown)}
    y, g = target.reshape(-1, c), generated.reshape(-1, c)
    rows, rhs = [], []
    for i in range(h):
        for j in range(w):
            for i2, j2 in ((i + 1, j), (i, j + 1)):
                if i2 >= h or j2 >= w:
                    continue
                p, q = i * w + j, i2 * w + j2
                if p not in slot and q not in slot:
                    continue
                row, b = np.zeros(len(unknown)), g[p] - g[q]
                if p in slot:
                    row[slot[p]] += 1
                else:
                    b = b - y[p]
                if q in slot:
                    row[slot[q]] -= 1
                else:
                    b = b + y[q]
                rows.append(row)
                rhs.append(b)
    x = y.astype(np.float64).copy()
    x[unknown] = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return x.reshape(h, w, c)


def random_case(seed, h=7, w=9, c=3, known_fraction=0.5):
    rs = np.random.RandomState(seed)
    target = rs.uniform(-1, 1, (h, w, c)).astype(np.float32)
    generated = rs.uniform(-1, 1, (h, w, c)).astype(np.float32)
    known = (rs.rand(h, w, 1) < known_fraction).astype(np.float32)
    known[0, 0] = 1.0  # at least one boundary pixel
    return target, generated, known


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_poisson_matches_dense_least_squares(seed):
    target, generated, known = random_case(seed)
    np.testing.assert_allclose(poisson_blend(target, generated, known), dense_poisson(target, generated, known),
                               atol=1e-5)


def test_centre_hole_matches_dense_solution():
    target, generated, _ = random_case(5, 10, 10, 1)
    known = np.ones((10, 10, 1), np.float32)
    known[3:7, 2:8] = 0
    np.testing.assert_allclose(poisson_blend(target, generated, known), dense_poisson(target, generated, known),
                               atol=1e-5)


def test_true_image_is_reproduced():
    target, _, known = random_case(3)
    np.testing.assert_allclose(poisson_blend(target, target, known), target, atol=1e-5)


def test_constant_offset_is_removed():
    target, generated, _ = random_case(4)
    known = np.ones((7, 9, 1), np.float32)
    known[2:5, 3:6] = 0
    # G(z) = y + 0.3 inside and out: same gradients as y, so the blend recovers y exactly.
    np.testing.assert_allclose(poisson_blend(target, target + 0.3, known), target, atol=1e-5)


@pytest.mark.parametrize("method", ["poisson", "none"])
def test_known_pixels_unchanged(method):
    target, generated, known = random_case(6)
    out = blend_images(target[None], generated[None], known[None], method)[0]
    keep = np.broadcast_to(known > 0, target.shape)
    np.testing.assert_array_equal(out[keep], target[keep])


def test_paste_and_edge_cases():
    target, generated, known = random_case(7)
    np.testing.assert_array_equal(paste(target, generated, known),
                                  np.where(known > 0, target, generated))
    np.testing.assert_array_equal(poisson_blend(target, generated, np.zeros_like(known)), generated)  # no boundary
    np.testing.assert_array_equal(poisson_blend(target, generated, np.ones_like(known)), target)  # no hole


def test_factorisation_is_reused_for_several_sources():
    target, generated, known = random_case(8)
    blender = PoissonBlender(known)
    for source in (generated, -generated, target):
        np.testing.assert_allclose(blender(target, source), dense_poisson(target, source, known), atol=1e-5)
