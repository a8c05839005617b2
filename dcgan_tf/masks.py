"""Masks for image completion: which pixels of an image are known (1) and which are missing (0).

A mask is float32 [H, W, 1], shared by all channels. Generated masks (`make_mask`) are drawn from a seeded
numpy Generator, so a mask depends only on the seed it is given, never on the other images of a batch.

Two mask types have no hole: `full` (plain projection onto the generator) and `lowres` (the contextual loss
compares block-averaged images). For both the known mask is all ones and the *hole*, the region that the
output takes from G(z) and that the scores are computed on, is the whole image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, UnidentifiedImageError

from dcgan_tf.errors import DcganError

# complete.py's --mask_type: every type make_mask draws, and `file` (mask PNGs, read_mask_file)
MASK_TYPES = ("center", "random", "left", "half", "grid", "lowres", "full", "pattern", "file")
HALF_SIDES = ("random", "top", "bottom", "left", "right")  # --half_side: random draws one of the others per image
NO_HOLE_TYPES = ("full", "lowres")
FILL_SIGMAS = (1.0, 2.0, 4.0, 8.0)  # smooth_fill: Gaussian widths tried in turn until a known pixel is in reach
# training_mask: the hole types a classifier of masked images learns (the completion masks that have a hole)
TRAINING_MASK_TYPES = ("center", "random", "half", "pattern", "grid")
PATTERN_FRACTION = 0.25  # missing fraction of `pattern` masks (Yeh et al.'s random pattern, ~25%)
GRID_STEP = 4  # `grid`: every 4th pixel in each direction is known


def center_mask(height: int, width: int, scale: float = 0.25) -> np.ndarray:
    """Missing [l:u] in each direction with l = int(S * scale), u = int(S * (1 - scale)) (bamos's centre)."""
    mask = np.ones((height, width, 1), np.float32)
    top, bottom = int(height * scale), int(height * (1 - scale))
    left, right = int(width * scale), int(width * (1 - scale))
    mask[top:bottom, left:right] = 0.0
    return mask


def random_mask(height: int, width: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round(fraction * H * W) pixel positions missing, all channels together."""
    flat = np.ones(height * width, np.float32)
    flat[rng.permutation(height * width)[:round(fraction * height * width)]] = 0.0
    return flat.reshape(height, width, 1)  # [H, W, 1]


def half_mask(height: int, width: int, side: str) -> np.ndarray:
    """The top, bottom, left or right half missing (the larger half when the size is odd is known)."""
    mask = np.ones((height, width, 1), np.float32)
    h, w = height // 2, width // 2
    region = {"top": np.s_[:h, :], "bottom": np.s_[height - h:, :], "left": np.s_[:, :w],
              "right": np.s_[:, width - w:]}[side]
    mask[region] = 0.0
    return mask


def grid_mask(height: int, width: int, step: int = GRID_STEP) -> np.ndarray:
    """Only every `step`-th pixel in each direction known."""
    mask = np.zeros((height, width, 1), np.float32)
    mask[::step, ::step] = 1.0
    return mask


def pattern_mask(height: int, width: int, rng: np.random.Generator, fraction: float = PATTERN_FRACTION) -> np.ndarray:
    """Irregular blobs: smooth random noise (a coarse grid upsampled bilinearly) thresholded at a quantile.

    The missing fraction is `fraction` up to ties (about 25% by default).
    """
    coarse = rng.random((max(2, height // 4 + 1), max(2, width // 4 + 1))).astype(np.float32)
    noise = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))  # [H, W]
    missing = noise > np.quantile(noise, 1.0 - fraction)
    return np.where(missing, 0.0, 1.0).astype(np.float32)[..., None]  # [H, W, 1]


def make_mask(mask_type: str, height: int, width: int, *, rng: np.random.Generator, center_scale: float = 0.25,
              random_fraction: float = 0.8, half_side: str = "random") -> np.ndarray:
    """One generated mask (every type but `file`).

    Args:
      mask_type: one of MASK_TYPES except "file".
      height: image height.
      width: image width.
      rng: the image's own seeded generator (random, pattern, and half with half_side "random").
      center_scale: `center`: the hole's margin as a fraction of the size, in (0, 0.5).
      random_fraction: `random`: fraction of pixel positions missing, in [0, 1).
      half_side: `half`: top, bottom, left, right, or random (drawn per image).

    Returns:
      float32 [H, W, 1], 1 = known.
    """
    if mask_type == "center":
        return center_mask(height, width, center_scale)
    if mask_type == "random":
        return random_mask(height, width, random_fraction, rng)
    if mask_type == "left":
        return half_mask(height, width, "left")
    if mask_type == "half":
        side = half_side if half_side != "random" else HALF_SIDES[1 + int(rng.integers(4))]
        return half_mask(height, width, side)
    if mask_type == "grid":
        return grid_mask(height, width)
    if mask_type == "pattern":
        return pattern_mask(height, width, rng)
    if mask_type in NO_HOLE_TYPES:
        return np.ones((height, width, 1), np.float32)
    raise ValueError(f"make_mask cannot generate mask type {mask_type!r}")


def training_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A mask of a type drawn uniformly from TRAINING_MASK_TYPES, with drawn parameters: a centre hole of margin
    U(0.15, 0.35), a random mask missing U(0.3, 0.9) of the pixels, a random half, a pattern or the grid.

    Teaches a classifier (`python -m dcgan_tf.classifier --mask_augment`) the inputs of the class prior.
    """
    mask_type = TRAINING_MASK_TYPES[int(rng.integers(len(TRAINING_MASK_TYPES)))]
    return make_mask(mask_type, height, width, rng=rng, center_scale=float(rng.uniform(0.15, 0.35)),
                     random_fraction=float(rng.uniform(0.3, 0.9)))


def gaussian_kernel(sigma: float, radius: int) -> np.ndarray:
    """The 1-D taps -radius..radius of a Gaussian, exp(-k^2 / 2 sigma^2), normalised to sum to 1."""
    g = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def gaussian_blur(x: np.ndarray, sigma: float, radius: int, axes=(0, 1)) -> np.ndarray:
    """Separable Gaussian filtering of x along `axes` with zero padding ('same' size), gaussian_kernel's taps."""
    g = gaussian_kernel(sigma, radius)
    for axis in axes:
        n = x.shape[axis]
        pad = [(radius, radius) if a == axis else (0, 0) for a in range(x.ndim)]
        xp = np.pad(x, pad)
        x = sum(g[k] * np.take(xp, np.arange(k, k + n), axis=axis) for k in range(2 * radius + 1))
    return x


def smooth_fill(images, masks, sigmas=FILL_SIGMAS) -> np.ndarray:
    """Known pixels kept; each missing pixel gets the Gaussian-weighted mean of the known pixels around it
    (normalised convolution) at the smallest sigma whose window reaches one; a pixel no window reaches is 0.

    Args:
      images: [N, H, W, C] in [-1, 1].
      masks: [N, H, W, 1], 1 = known.

    Returns:
      float32 [N, H, W, C].
    """
    images, masks = np.asarray(images, np.float32), np.asarray(masks, np.float32)
    known = np.broadcast_to(masks > 0.5, images.shape)
    out, todo = np.where(known, images, 0.0), ~known
    for sigma in sigmas:
        if not todo.any():
            break
        radius = int(3 * sigma)
        centre = gaussian_kernel(sigma, radius)[radius] ** 2  # the 2-D kernel's centre tap
        blur = lambda x, s=sigma, r=radius: gaussian_blur(x, s, r, axes=(1, 2))
        weight = blur(masks) / centre  # [N, H, W, 1]: 1 per known pixel at the centre, less further away
        mean = blur(images * masks) / centre / np.maximum(weight, 1e-3)
        reached = todo & (weight > 1e-3)
        out = np.where(reached, mean, out)
        todo = todo & ~reached
    return out.astype(np.float32)


def mask_from_array(gray: np.ndarray) -> np.ndarray:
    """A grayscale uint8 [H, W] (white = known) -> float32 [H, W, 1] mask; values >= 128 count as known."""
    return (np.asarray(gray) >= 128).astype(np.float32)[..., None]


def read_mask_file(path: str) -> np.ndarray:
    """A mask PNG (any mode; white = known) at its own size -> float32 [h, w, 1]; DcganError naming the file."""
    try:
        with Image.open(path) as image:
            return mask_from_array(np.asarray(image.convert("L")))
    except (OSError, UnidentifiedImageError) as e:
        raise DcganError(f"cannot read mask {path}: {e}") from e


def check_mask_size(mask: np.ndarray, path: str, height: int, width: int) -> np.ndarray:
    """Returns `mask` when it is H x W; otherwise DcganError naming the file and the size it must have."""
    if mask.shape[:2] != (height, width):
        raise DcganError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but the model works on {width}x{height} "
                         "images: draw the mask at that size (or at its image's own size, with --mask_dir)")
    return mask


def hole_mask(mask_type: str, known: np.ndarray) -> np.ndarray:
    """The region the output takes from G(z) and that is scored: 1 - known, or everything for full/lowres."""
    return np.ones_like(known) if mask_type in NO_HOLE_TYPES else 1.0 - known


def context_pool(mask_type: str, lowres_factor: int = 8) -> int:
    """Block size over which the contextual loss compares images: `lowres_factor` for lowres, else 1."""
    return lowres_factor if mask_type == "lowres" else 1


def block_mean(images: np.ndarray, factor: int) -> np.ndarray:
    """Means over factor x factor blocks of [..., H, W, C]; a partial last block averages its own pixels."""
    if factor == 1:
        return images
    h, w = images.shape[-3:-1]
    rows, cols = np.arange(0, h, factor), np.arange(0, w, factor)
    sums = np.add.reduceat(np.add.reduceat(images, rows, axis=-3), cols, axis=-2)
    counts = np.diff(np.append(rows, h))[:, None, None] * np.diff(np.append(cols, w))[None, :, None]
    return sums / counts


def upsample_blocks(pooled: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour inverse of block_mean: [..., h, w, C] -> [..., H, W, C]."""
    up = np.repeat(np.repeat(pooled, factor, axis=-3), factor, axis=-2)
    return up[..., :height, :width, :]


def lowres_view(images: np.ndarray, pool: int) -> np.ndarray:
    """What a `lowres` completion knows of [..., H, W, C] images: each pool x pool block's mean, upsampled
    (nearest); the images themselves for pool 1. Whatever chooses a class must see only this."""
    images = np.asarray(images, np.float32)
    if pool == 1:
        return images
    height, width = images.shape[-3:-1]
    return upsample_blocks(block_mean(images, pool), pool, height, width).astype(np.float32)


def masked_view(image: np.ndarray, known: np.ndarray, pool: int = 1, fill: float = 1.0) -> np.ndarray:
    """What the completion sees, for display: missing pixels set to `fill` (white); block means for lowres."""
    if pool > 1:
        return lowres_view(image, pool)
    return np.where(known > 0, image, fill).astype(np.float32)
