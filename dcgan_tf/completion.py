"""Semantic image inpainting with a trained DCGAN (Yeh et al. 2017; bamos/dcgan-completion.tensorflow).

For images y with masks M (1 = known) find, per image, z* = argmin_z L_c(z) + lam * L_p(z) with z kept in
the latent range, then put G(z*) into the hole (see blend.py):
  contextual L_c = sum_i W_i |G(z)_i - y_i|, with W the importance weights of Yeh et al. (each known pixel
      weighted by the fraction of missing pixels in its window) or plain W = M; for `lowres` the images are
      compared after block averaging;
  perceptual L_p = the generator's adversarial loss on D(G(z)) (losses.generator_loss with the run's loss).

Like stylegan2's projector this is a library: `complete` takes arrays and keyword-only hyperparameters and
returns the images and the whole loss history; complete_cli.py does the files. `Completer` compiles its update
step once for a fixed batch size; a short batch is padded with rows that are marked invalid, get no gradient
and are never returned. Every loss is per image (a sum over that image's pixels, never a batch mean), so an
image's result does not depend on the other images in its batch. Batch norm runs in inference mode.

Without labels a conditional model's class is searched here (ClassSearch: a pilot of every class, then the best
few in full) and chosen by class_choice.choose_classes; metrics.hole_scores scores the completions.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from dcgan_tf.blend import blend_images
from dcgan_tf.class_choice import choose_classes, weighted_known_pixels_prior
from dcgan_tf.config import APPROACHES, CLASS_SEARCHES, DEFAULT_PRIOR_WEIGHT
from dcgan_tf.latent import sample_z, z_range
from dcgan_tf.losses import generator_loss
from dcgan_tf.metrics import hole_scores
from dcgan_tf.model import apply_discriminator, apply_generator

LOSS_NAMES = ("contextual", "perceptual", "total")
PROGRESS_EVERY = 10  # iterations between progress callbacks (each one waits for the device)


# ---------------------------------------------------------------------------------------------------------
# Losses and updates: pure functions, per image.

def context_weights(masks, window: int = 7, weighted: bool = True) -> np.ndarray:
    """Per-pixel weights of the contextual loss.

    Weighted (Yeh et al.): W_i = M_i * (number of missing pixels in the window x window neighbourhood of i) /
    window^2; pixels outside the image count as known. An image with no missing pixel (full, lowres, an
    all-white file mask) would get all-zero weights, so it falls back to W = M.

    Args:
      masks: [N, H, W, 1] float masks, 1 = known.
      window: odd neighbourhood size.
      weighted: False gives W = M.

    Returns:
      float32 [N, H, W, 1].
    """
    masks = np.asarray(masks, np.float32)
    if not weighted:
        return masks.copy()
    kernel = tf.ones((window, window, 1, 1), tf.float32)
    missing = tf.nn.conv2d(1.0 - masks, kernel, strides=1, padding="SAME").numpy() / window ** 2
    weights = masks * missing
    has_hole = (masks < 0.5).any(axis=(1, 2, 3))
    return np.where(has_hole[:, None, None, None], weights, masks).astype(np.float32)


def block_mean(images, factor: int):
    """TF means over factor x factor blocks of [B, H, W, C]; a partial last block averages its own pixels."""
    if factor == 1:
        return images
    pad = [[0, 0], [0, -images.shape[1] % factor], [0, -images.shape[2] % factor], [0, 0]]
    sums = tf.nn.avg_pool2d(tf.pad(images, pad), factor, factor, "VALID")
    counts = tf.nn.avg_pool2d(tf.pad(tf.ones_like(images[..., :1]), pad), factor, factor, "VALID")
    return sums / counts


def contextual_loss(generated, target, weights, pool: int = 1):
    """Per-image sum_i W_i |G(z)_i - y_i| over pixels and channels ([B, H, W, C] images, [B, H, W, 1] W).

    With pool > 1 the images and weights are block-averaged first (the `lowres` mask). Returns [B].
    """
    diff = tf.abs(block_mean(generated, pool) - block_mean(target, pool))
    return tf.reduce_sum(block_mean(weights, pool) * diff, axis=[1, 2, 3])


def perceptual_loss(fake_logits, loss: str = "gan"):
    """losses.generator_loss of each image on its own: [B, 1] logits -> [B]."""
    return tf.vectorized_map(lambda logit: generator_loss(logit[None], loss), fake_logits)


def momentum_update(z, v, grad, lr: float, momentum: float):
    """bamos's projected-momentum step before projection: v' = m v - lr g; z' = z - m v + (1 + m) v'.

    Returns:
      (z', v').
    """
    v_new = momentum * v - lr * grad
    return z - momentum * v + (1.0 + momentum) * v_new, v_new


def adam_update(z, m, v, t, grad, lr: float, beta1: float, beta2: float, eps: float):
    """One Adam step (Kingma & Ba, eps added to sqrt(v_hat)) elementwise, so each image's z is its own.

    Args:
      z, m, v: [B, z_dim] latent and moment estimates.
      t: the step number, counting from 1 (a float scalar).
      grad: [B, z_dim] gradient of the per-image loss.

    Returns:
      (z', m', v').
    """
    m = beta1 * m + (1.0 - beta1) * grad
    v = beta2 * v + (1.0 - beta2) * tf.square(grad)
    m_hat = m / (1.0 - beta1 ** t)
    v_hat = v / (1.0 - beta2 ** t)
    return z - lr * m_hat / (tf.sqrt(v_hat) + eps), m, v


# ---------------------------------------------------------------------------------------------------------
# The optimisation.

@dataclasses.dataclass
class Completion:
    """The result for N images (the best start of each)."""

    generated: np.ndarray  # [N, H, W, C] G(z*) after the last update
    z: np.ndarray  # [N, z_dim]
    losses: dict  # name in LOSS_NAMES -> [N, n_iter + 1]: row t is the loss at z before update t (+ final)
    labels: np.ndarray  # [N] class used (-1: unconditional model)
    restarts: np.ndarray  # [N] which restart won
    snapshot_steps: list  # iterations of the snapshots, the last one n_iter
    snapshots: np.ndarray  # [T, N, H, W, C] G(z) at those iterations (T = 0 without snapshots)
    images: np.ndarray | None = None  # [N, H, W, C] blended completions (set by `complete`)
    keep: np.ndarray | None = None  # [N, H, W, 1] pixels `images` took from the input (set by `complete`)
    snapshot_images: np.ndarray | None = None  # [T, N, H, W, C] the snapshots blended (set by `complete`)
    psnr: np.ndarray | None = None  # [N] dB over the hole against the originals (NaN: none given)
    ssim: np.ndarray | None = None  # [N] SSIM over the hole against the originals (NaN: none given)
    # Label-free class choice (conditional model, no labels given); otherwise -1 / NaN:
    runner_up: np.ndarray | None = None  # [N] the second-best class of the final comparison
    runner_up_losses: dict | None = None  # name -> [N] final losses of the runner-up's completion
    pilot_losses: np.ndarray | None = None  # [N, y_dim] total loss of every class after the pilot (NaN: none)

    def __post_init__(self):
        n = len(self.labels)
        if self.runner_up is None:
            self.runner_up = np.full(n, -1)
        if self.runner_up_losses is None:
            self.runner_up_losses = {k: np.full(n, np.nan) for k in LOSS_NAMES}
        if self.pilot_losses is None:
            self.pilot_losses = np.full((n, 0), np.nan)

    @property
    def final_losses(self) -> dict:
        """name -> [N] loss at the returned z."""
        return {k: v[:, -1] for k, v in self.losses.items()}


class Completer:
    """Finds z per image for batches of up to `batch_size` images; the update step is compiled once."""

    def __init__(self, G, D, *, batch_size: int = 64, z_dim: int, y_dim: int = 0,
                 z_dist: str = "uniform_signed", loss: str = "gan", lam: float = 0.1, approach: str = "momentum",
                 lr: float = 0.01, momentum: float = 0.9, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weighted_mask: bool = True, window: int = 7, pool: int = 1):
        """Creates the state variables of one batch; the step is traced on first use.

        Args:
          G, D: the trained generator and discriminator.
          batch_size: rows of the compiled step.
          z_dim, y_dim, z_dist, loss: the run's settings (y_dim 0 = unconditional).
          lam: weight of the perceptual loss.
          approach: "momentum" (lr, momentum) or "adam" (lr, beta1, beta2, eps).
          weighted_mask, window: importance-weighted contextual loss (see context_weights).
          pool: block size of the contextual comparison (8 for lowres, else 1).
        """
        if approach not in APPROACHES:
            raise ValueError(f"unknown approach {approach!r}")
        self.G, self.D, self.batch_size, self.z_dim, self.y_dim = G, D, batch_size, z_dim, y_dim
        self.z_dist, self.loss, self.lam, self.approach = z_dist, loss, lam, approach
        self.lr, self.momentum, self.beta1, self.beta2, self.eps = lr, momentum, beta1, beta2, eps
        self.weighted_mask, self.window, self.pool = weighted_mask, window, pool
        self.z_low, self.z_high = z_range(z_dist)
        shape = (batch_size, G.output_height, G.output_width, G.c_dim)
        variable = lambda s, name: tf.Variable(tf.zeros(s), trainable=False, name=name)
        self.z = tf.Variable(tf.zeros((batch_size, z_dim)), name="z")
        self.slot1, self.slot2 = variable((batch_size, z_dim), "v_or_m"), variable((batch_size, z_dim), "v")
        self.t = variable((), "t")
        self.target, self.weights = variable(shape, "target"), variable(shape[:3] + (1,), "weights")
        self.labels, self.valid = variable((batch_size, y_dim), "labels"), variable((batch_size,), "valid")
        self._step = tf.function(self._step_fn)
        self._progress = [0, 0, None]  # iterations done, iterations in all, on_progress of the current call
        self._evaluate = tf.function(self._losses)

    def _losses(self):
        generated = apply_generator(self.G, self.z, self.labels, training=False)
        logits = apply_discriminator(self.D, generated, self.labels, training=False)
        contextual = contextual_loss(generated, self.target, self.weights, self.pool)
        perceptual = perceptual_loss(logits, self.loss)
        return {"contextual": contextual, "perceptual": perceptual,
                "total": contextual + self.lam * perceptual}, generated

    def _step_fn(self):
        """Losses and G(z) at the current z, then one projected update of z. The tape sums per-image losses
        of valid rows, so each row's gradient is its own image's."""
        with tf.GradientTape() as tape:
            losses, generated = self._losses()
            objective = tf.reduce_sum(losses["total"] * self.valid)
        grad = tape.gradient(objective, self.z)
        if self.approach == "momentum":
            z, v = momentum_update(self.z, self.slot1, grad, self.lr, self.momentum)
            self.slot1.assign(v)
        else:
            self.t.assign_add(1.0)
            z, m, v = adam_update(self.z, self.slot1, self.slot2, self.t, grad, self.lr, self.beta1, self.beta2,
                                  self.eps)
            self.slot1.assign(m)
            self.slot2.assign(v)
        self.z.assign(tf.clip_by_value(z, self.z_low, self.z_high))  # projection onto the latent range
        return losses, generated

    def initial_z(self, seeds: Sequence[int], num_restarts: int) -> np.ndarray:
        """[N, R, z_dim] starts: image i draws R vectors from its own generator seeded with seeds[i]."""
        starts = [sample_z(tf.random.Generator.from_seed(int(s)), num_restarts, self.z_dim, self.z_dist).numpy()
                  for s in seeds]
        return np.clip(np.stack(starts), self.z_low, self.z_high).astype(np.float32)

    def __call__(self, images, masks, labels=None, *, seeds: Sequence[int] | None = None, n_iter: int = 1000,
                 num_restarts: int = 1, snapshot_every: int = 0,
                 on_progress: Callable[[int, int, float], None] | None = None, class_search: str = "pilot",
                 pilot_iter: int | None = None, top_k: int = 1, class_prior=None, classify=None,
                 prior_weight: float = DEFAULT_PRIOR_WEIGHT) -> Completion:
        """Optimises z for any number of images, batch by batch.

        Args:
          images: [N, H, W, C] in [-1, 1] (the original pixels y; missing ones are never read).
          masks: [N, H, W, 1], 1 = known.
          labels: [N] class ids for a conditional model; None chooses each image's class (class_search).
          seeds: per-image seeds of the starting z (default 0..N-1).
          n_iter: updates of z.
          num_restarts: independent starts per image (and per class); the lowest final total loss wins.
          snapshot_every: also keep G(z) every this many iterations (0 = only the final).
          on_progress: called as (iterations done, iterations in all, mean total loss) every ~10 iterations.
          class_search: without labels, "pilot" runs every class for pilot_iter iterations and then the top_k
            classes of the pilot for n_iter; "all" runs every class for n_iter. Classes are ranked by
            class_choice.choose_classes: log(total loss) - prior_weight * (class_prior + log p(c | completion
            with class c)). With top_k 1 the pilot's ranking decides; with more, the ranking after the full runs.
          pilot_iter: iterations of the pilot (default n_iter // 10, at least 1).
          top_k: classes that get the full run after the pilot (>= 1).
          class_prior: [N, y_dim] log-probabilities of the classes (e.g. a classifier on the known pixels).
          classify: images [n, H, W, C] -> logits [n, y_dim]; when given, each class's completion (G(z) pasted
            into the hole) is classified and log p(that class) joins the prior (the classes' consistency).
          prior_weight: weight of the prior terms in the ranking.

        Returns:
          a Completion (without blended images).
        """
        n = len(images)
        seeds = list(range(n)) if seeds is None else list(seeds)
        weights = context_weights(masks, self.window, self.weighted_mask)
        starts = self.initial_z(seeds, num_restarts)
        search = self._class_search(labels, class_search, n_iter, pilot_iter, top_k)
        chunks = range(0, n, self.batch_size)
        self._progress = [0, len(chunks) * search.iterations(n_iter, num_restarts), on_progress]
        prior = None if class_prior is None else np.asarray(class_prior, np.float64)
        results = []
        for lo in chunks:
            hi = min(n, lo + self.batch_size)
            batch = np.asarray(images[lo:hi], np.float32)
            self._load(batch, weights[lo:hi])
            ids = None if labels is None or not self.y_dim else np.asarray(labels)[lo:hi]
            run = lambda z0, label_ids, iters, snaps=snapshot_every: self._best_restart(z0, label_ids, iters, snaps)
            if ids is not None or not self.y_dim:
                results.append(run(starts[lo:hi], ids, n_iter))
            else:
                rank = functools.partial(choose_classes, images=batch, masks=np.asarray(masks[lo:hi], np.float32),
                                         classify=classify or None, log_prior=None if prior is None else prior[lo:hi],
                                         prior_weight=prior_weight, pool=self.pool)
                results.append(search.choose(run, starts[lo:hi], n_iter, rank))
        return _concatenate(results)

    def complete(self, images, masks, labels=None, *, blend: str = "poisson", keep=None, originals=None,
                 classify=None, class_prior=None, **search) -> Completion:
        """Completes images: finds z per image (__call__), blends G(z) into the hole and scores the result.

        The one function behind `completion.complete`, complete.py and `dcgan_tf.load_run(...).complete`.

        Args:
          images: [N, H, W, C] in [-1, 1].
          masks: [N, H, W, 1], 1 = known.
          labels: [N] class ids for a conditional model; None chooses each image's class.
          blend: "poisson" or "none" (paste).
          keep: [N, H, W, 1] pixels the output keeps from `images`; default `default_keep(masks)`.
          originals: [N, H, W, C] in [-1, 1] to score against (PSNR and SSIM over the pixels not kept, of the
            completion as an 8-bit image holds it); None leaves the scores NaN.
          classify: images -> logits of the class prior (label-free only): it classifies the known pixels
            (class_choice.weighted_known_pixels_prior, unless class_prior is given) and each class's completion.
          class_prior: [N, y_dim] log-probabilities of the classes; see __call__.
          **search: the other keyword arguments of __call__ (seeds, n_iter, num_restarts, snapshot_every, ...).

        Returns:
          the Completion, with `images`, `keep`, `snapshot_images` and the scores set.

        Example:
          >>> completer = Completer(G, D, batch_size=4, z_dim=100)  # doctest: +SKIP
          >>> result = completer.complete(images, masks, n_iter=100, originals=images)  # doctest: +SKIP
        """
        images, masks = np.asarray(images, np.float32), np.asarray(masks, np.float32)
        label_free = labels is None and self.y_dim
        if classify is not None and label_free and class_prior is None:
            class_prior = weighted_known_pixels_prior(classify, images, masks, self.pool)
        result = self(images, masks, labels, classify=classify if label_free else None, class_prior=class_prior,
                      **search)
        result.keep = default_keep(masks) if keep is None else np.asarray(keep, np.float32)
        result.images = blend_images(images, result.generated, result.keep, blend)
        if search.get("snapshot_every"):
            result.snapshot_images = np.stack([blend_images(images, g, result.keep, blend)
                                               for g in result.snapshots])  # [T, N, H, W, C]
        result.psnr, result.ssim = hole_scores(originals, result.images, 1.0 - result.keep)
        return result

    def _class_search(self, labels, mode: str, n_iter: int, pilot_iter: int | None, top_k: int) -> ClassSearch:
        """The validated plan of the label-free class choice (a plan of one run when it does not apply)."""
        if mode not in CLASS_SEARCHES:
            raise ValueError(f"unknown class_search {mode!r}")
        if not self.y_dim or labels is not None:
            return ClassSearch(y_dim=0)
        pilot_iter = max(1, n_iter // 10) if pilot_iter is None else pilot_iter
        if pilot_iter < 1 or top_k < 1:
            raise ValueError(f"pilot_iter and top_k must be >= 1, got {pilot_iter}, {top_k}")
        if mode == "all":
            return ClassSearch(y_dim=self.y_dim)
        return ClassSearch(y_dim=self.y_dim, pilot_iter=pilot_iter, top_k=min(top_k, self.y_dim))

    def _best_restart(self, z0, label_ids, n_iter, snapshot_every) -> Completion:
        """The best of the restarts z0 [n, R, z_dim] for the loaded batch."""
        best = None
        for restart in range(z0.shape[1]):
            run = self._optimise(z0[:, restart], label_ids, restart, n_iter, snapshot_every)
            best = run if best is None else _keep_better(best, run)
        return best

    def _pad(self, rows: np.ndarray) -> np.ndarray:
        """[n, ...] -> [batch_size, ...] with zero rows appended."""
        pad = np.zeros((self.batch_size - len(rows),) + rows.shape[1:], np.float32)
        return np.concatenate([np.asarray(rows, np.float32), pad])

    def _load(self, images: np.ndarray, weights: np.ndarray) -> None:
        self.n = len(images)
        self.target.assign(self._pad(images))
        self.weights.assign(self._pad(weights))
        self.valid.assign(self._pad(np.ones(self.n)))

    def _optimise(self, z0, label_ids, restart, n_iter, snapshot_every) -> Completion:
        """n_iter updates from z0 [n, z_dim] for the loaded batch; returns the batch's Completion."""
        n = self.n
        done, total, on_progress = self._progress
        self._progress[0] += n_iter
        self.z.assign(self._pad(z0))
        self.slot1.assign(tf.zeros_like(self.slot1))
        self.slot2.assign(tf.zeros_like(self.slot2))
        self.t.assign(0.0)
        if self.y_dim:
            self.labels.assign(self._pad(np.eye(self.y_dim, dtype=np.float32)[label_ids]))
        history, steps, snapshots = [], [], []
        for it in range(n_iter):
            losses, generated = self._step()
            history.append(losses)
            if snapshot_every and it % snapshot_every == 0:
                steps.append(it)
                snapshots.append(generated[:n])
            if on_progress and ((it + 1) % PROGRESS_EVERY == 0 or it + 1 == n_iter):
                on_progress(done + it + 1, total, float(tf.reduce_mean(losses["total"][:n])))
        losses, generated = self._evaluate()  # the loss of the z that is returned
        history.append(losses)
        steps.append(n_iter)
        snapshots.append(generated[:n])
        return Completion(
            generated=generated[:n].numpy(), z=self.z[:n].numpy(),
            losses={k: tf.stack([h[k][:n] for h in history], axis=1).numpy() for k in LOSS_NAMES},
            labels=np.full(n, -1) if label_ids is None else np.asarray(label_ids), restarts=np.full(n, restart),
            snapshot_steps=steps, snapshots=np.stack([s.numpy() for s in snapshots]))  # [T, n, H, W, C]


def _pick(runs: list[Completion], index) -> Completion:
    """Per image i the completion of runs[index[i]] (all runs of the same images)."""
    index = np.asarray(index).astype(np.int64)
    rows = np.arange(len(index))

    def take(name, axis=0):
        stacked = np.stack([np.moveaxis(getattr(r, name), axis, 0) for r in runs])  # [len(runs), n, ...]
        return np.moveaxis(stacked[index, rows], 0, axis)

    losses = {k: np.stack([r.losses[k] for r in runs])[index, rows] for k in LOSS_NAMES}
    return Completion(generated=take("generated"), z=take("z"), losses=losses, labels=take("labels"),
                      restarts=take("restarts"), snapshot_steps=runs[0].snapshot_steps,
                      snapshots=take("snapshots", axis=1))


def _keep_better(best: Completion, run: Completion) -> Completion:
    """Per image, the completion with the lower final total loss (ties keep the earlier)."""
    return _pick([best, run], run.losses["total"][:, -1] < best.losses["total"][:, -1])


@dataclasses.dataclass(frozen=True)
class ClassSearch:
    """The runs of a conditional model's label-free class search: a pilot of every class, then the best few in
    full, ranked by class_choice.choose_classes.

    y_dim 0: no choice (one run). pilot_iter 0: every class gets the full run (top_k is then y_dim).
    """

    y_dim: int
    pilot_iter: int = 0
    top_k: int = 0

    def iterations(self, n_iter: int, num_restarts: int) -> int:
        """Iterations of z per batch row, restarts included."""
        if not self.y_dim:
            return n_iter * num_restarts
        if not self.pilot_iter:
            return self.y_dim * n_iter * num_restarts
        return self.y_dim * self.pilot_iter + self.top_k * n_iter * num_restarts

    def choose(self, run, starts, n_iter: int, rank) -> Completion:
        """Completes one loaded batch with the best class per image.

        Args:
          run: (z0 [n, R, z_dim], label ids [n], iterations, snapshot_every=...) -> Completion of the batch.
          starts: [n, R, z_dim] starting points; the pilot uses the first.
          n_iter: iterations of each full run.
          rank: (losses [n, K], generated [K, n, H, W, C], candidates [n, K]) -> class_choice.ClassChoice:
            class_choice.choose_classes with the batch's images, classifier and prior bound.

        Returns:
          the Completion of each image's best class, with its runner-up and the pilot's losses.
        """
        n, rows = len(starts), np.arange(len(starts))
        pilot = np.full((n, self.y_dim), np.nan)
        candidates = np.tile(np.arange(self.y_dim), (n, 1))  # [n, K]
        if self.pilot_iter:
            trials = [run(starts[:, :1], np.full(n, c), self.pilot_iter, 0) for c in range(self.y_dim)]
            for c, trial in enumerate(trials):
                pilot[:, c] = trial.final_losses["total"]
            ranked = rank(pilot, [trial.generated for trial in trials], candidates)
            candidates = ranked.order[:, :self.top_k]  # the pilot's candidates are the classes themselves
        runs = [run(starts, candidates[:, j], n_iter) for j in range(candidates.shape[1])]
        best = runs[0]
        if len(runs) > 1:
            finals = np.stack([r.final_losses["total"] for r in runs], 1)  # [n, K]
            order = rank(finals, [r.generated for r in runs], candidates).order
            best, second = _pick(runs, order[:, 0]), _pick(runs, order[:, 1])
            best.runner_up, best.runner_up_losses = second.labels, second.final_losses
        elif self.pilot_iter:  # one full run: the pilot decided; the runner-up is its second, with its pilot loss
            best.runner_up = ranked.runner_up
            best.runner_up_losses = {k: np.full(n, np.nan) for k in LOSS_NAMES}
            best.runner_up_losses["total"] = pilot[rows, ranked.runner_up]
        best.pilot_losses = pilot
        return best


def _concatenate(parts: list[Completion]) -> Completion:
    cat = lambda name, axis=0: np.concatenate([getattr(p, name) for p in parts], axis=axis)
    return Completion(generated=cat("generated"), z=cat("z"),
                      losses={k: np.concatenate([p.losses[k] for p in parts]) for k in LOSS_NAMES},
                      labels=cat("labels"), restarts=cat("restarts"), snapshot_steps=parts[0].snapshot_steps,
                      snapshots=cat("snapshots", axis=1), runner_up=cat("runner_up"),
                      runner_up_losses={k: np.concatenate([p.runner_up_losses[k] for p in parts]) for k in LOSS_NAMES},
                      pilot_losses=cat("pilot_losses"))


def default_keep(masks) -> np.ndarray:
    """The pixels a completion keeps from its input: the known ones, none where no pixel is missing."""
    masks = np.asarray(masks, np.float32)  # [N, H, W, 1]
    no_hole = np.all(masks >= 1.0, axis=(1, 2, 3), keepdims=True)  # full and lowres masks
    return np.where(no_hole, 0.0, masks).astype(np.float32)


def complete(G, D, images, masks, *, labels=None, z_dim: int, y_dim: int = 0, z_dist: str = "uniform_signed",
             loss: str = "gan", lam: float = 0.1, approach: str = "momentum", n_iter: int = 1000, lr: float = 0.01,
             momentum: float = 0.9, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
             weighted_mask: bool = True, window: int = 7, pool: int = 1, num_restarts: int = 1,
             batch_size: int = 64, blend: str = "poisson", keep=None, seeds: Sequence[int] | None = None,
             snapshot_every: int = 0, on_progress=None, class_search: str = "pilot", pilot_iter: int | None = None,
             top_k: int = 1, class_prior=None, classify=None, prior_weight: float = DEFAULT_PRIOR_WEIGHT,
             originals=None) -> Completion:
    """Completes N images with a trained DCGAN: finds z per image, then blends G(z) into the hole.

    Args:
      G, D: the trained generator and discriminator.
      images: [N, H, W, C] in [-1, 1].
      masks: [N, H, W, 1], 1 = known (the contextual loss's mask).
      labels: [N] class ids for a conditional model; None chooses each image's class (see class_search).
      keep: [N, H, W, 1] pixels the output keeps from `images`. Default: the mask of each image that has a hole,
        and zeros for an image whose mask has none (full, lowres: every pixel known), whose output is then G(z),
        as complete.py writes it.
      blend: "poisson" or "none" (paste).
      originals: [N, H, W, C] to score the completions against (PSNR, SSIM over the hole); None: no scores.
      classify: the class prior's classifier (label-free); see Completer.complete.
      Other arguments: see Completer and Completer.__call__.

    Returns:
      a Completion whose `images` are the blended completions.

    Example:
      >>> result = complete(G, D, images, masks, z_dim=100, n_iter=200, originals=images)  # doctest: +SKIP
      >>> result.images.shape, result.psnr  # doctest: +SKIP
    """
    completer = Completer(G, D, batch_size=batch_size, z_dim=z_dim, y_dim=y_dim, z_dist=z_dist, loss=loss, lam=lam,
                          approach=approach, lr=lr, momentum=momentum, beta1=beta1, beta2=beta2, eps=eps,
                          weighted_mask=weighted_mask, window=window, pool=pool)
    return completer.complete(images, masks, labels, blend=blend, keep=keep, originals=originals, classify=classify,
                              class_prior=class_prior, seeds=seeds, n_iter=n_iter, num_restarts=num_restarts,
                              snapshot_every=snapshot_every, on_progress=on_progress, class_search=class_search,
                              pilot_iter=pilot_iter, top_k=top_k, prior_weight=prior_weight)


def image_seeds(seed: int, keys: Sequence[int]) -> list[int]:
    """Per-image seeds of the starting z, one from (seed, key) for each image's key.

    complete.py keys an image by a hash of its output name, so its completion does not depend on the other
    images completed with it; `dcgan_tf.load_run(...).complete` by its index unless given keys.

    Example:
      >>> image_seeds(0, [0, 1]) == image_seeds(0, [0, 1])
      True
    """
    return [int(np.random.SeedSequence([int(seed), int(key)]).generate_state(1)[0]) for key in keys]
