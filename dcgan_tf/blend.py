"""Putting G(z) into the hole: a plain paste, or Poisson image editing solved exactly.

Poisson blending (Perez et al. 2003, as in Yeh et al.) finds x* = argmin_x sum over 4-neighbour pairs (p, q)
of ((x_p - x_q) - (g_p - g_q))^2 subject to x = y on known pixels: the hole keeps G(z)'s gradients and meets
the known pixels without a seam. Pairs reach only pixels inside the image (no condition at its border). The
normal equations are sparse, symmetric and positive definite whenever one pixel is known; scipy's sparse LU
solves them exactly, once factorised per mask and reused for every channel and every progress snapshot.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

# Offsets of the 4-neighbourhood.
_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def paste(target: np.ndarray, generated: np.ndarray, known: np.ndarray) -> np.ndarray:
    """M * y + (1 - M) * G(z) for [..., H, W, C] images and a [..., H, W, 1] mask (1 = keep y)."""
    return (known * target + (1.0 - known) * generated).astype(np.float32)


def _neighbour_pairs(height: int, width: int):
    """Yields (p, q) flat index arrays of every ordered pair of 4-neighbours inside an H x W image."""
    index = np.arange(height * width).reshape(height, width)  # [H, W]
    for dy, dx in _NEIGHBOURS:
        p = index[max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)]
        q = index[max(0, dy):height - max(0, -dy), max(0, dx):width - max(0, -dx)]
        yield p.ravel(), q.ravel()


class PoissonBlender:
    """The factorised Poisson system of one mask; call it with (target, generated) images of that size."""

    def __init__(self, known: np.ndarray):
        """Builds and factorises the normal equations of the hole.

        Args:
          known: [H, W, 1] or [H, W] mask, 1 = keep the target's pixel (the boundary condition).
        """
        keep = np.asarray(known).reshape(known.shape[0], known.shape[1]) > 0.5  # [H, W]
        self.shape = keep.shape
        self.keep = keep.ravel()
        self.unknown = np.flatnonzero(~self.keep)
        self.solver = None
        if self.unknown.size == 0 or not self.keep.any():
            return  # nothing to solve (no hole) or no boundary (the result is G(z) itself)
        slot = np.full(self.keep.size, -1)
        slot[self.unknown] = np.arange(self.unknown.size)
        rows, cols, vals, self.pairs = [], [], [], []
        for p, q in _neighbour_pairs(*self.shape):
            inside = ~self.keep[p]  # equations only for hole pixels p
            p, q = p[inside], q[inside]
            self.pairs.append((p, q))
            free = ~self.keep[q]  # a hole neighbour is an unknown too; a known one goes to the right side
            rows += [slot[p], slot[p[free]]]
            cols += [slot[p], slot[q[free]]]
            vals += [np.ones(p.size), -np.ones(free.sum())]
        n = self.unknown.size
        A = scipy.sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                    shape=(n, n))  # duplicates add up: the diagonal is the neighbour count
        self.solver = scipy.sparse.linalg.splu(A)

    def __call__(self, target: np.ndarray, generated: np.ndarray) -> np.ndarray:
        """The blended [H, W, C] image: target on known pixels, the Poisson solution in the hole."""
        h, w = self.shape
        c = target.shape[-1]
        if self.unknown.size == 0:
            return np.asarray(target, np.float32).copy()
        if self.solver is None:
            return np.asarray(generated, np.float32).copy()
        y = np.asarray(target, np.float64).reshape(h * w, c)  # [H*W, C]
        g = np.asarray(generated, np.float64).reshape(h * w, c)
        slot = np.full(h * w, -1)
        slot[self.unknown] = np.arange(self.unknown.size)
        b = np.zeros((self.unknown.size, c))
        for p, q in self.pairs:
            np.add.at(b, slot[p], g[p] - g[q] + np.where(self.keep[q][:, None], y[q], 0.0))
        x = y.copy()
        x[self.unknown] = self.solver.solve(b)
        return x.reshape(h, w, c).astype(np.float32)


def poisson_blend(target: np.ndarray, generated: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Poisson image editing of one image, solved exactly.

    Args:
      target: [H, W, C] the image y whose known pixels are kept.
      generated: [H, W, C] G(z), whose gradients fill the hole.
      known: [H, W, 1] mask, 1 = known (boundary); no known pixel at all returns G(z).

    Returns:
      float32 [H, W, C]: y on known pixels, the least-squares gradient match inside the hole.
    """
    return PoissonBlender(known)(target, generated)


def blend_images(targets: np.ndarray, generated: np.ndarray, known: np.ndarray, method: str = "poisson"):
    """Blends a batch: [N, H, W, C] targets and G(z), [N, H, W, 1] masks; method "poisson" or "none" (paste)."""
    if method == "none":
        return paste(targets, generated, known)
    if method != "poisson":
        raise ValueError(f"unknown blend {method!r}")
    return np.stack([poisson_blend(t, g, k) for t, g, k in zip(targets, generated, known)])
