"""The Python API: train a run, load a trained one, and use it from your own code (a notebook, a script).

    import dcgan_tf
    result = dcgan_tf.train(dataset="fashion_mnist", input_height=28, output_height=28, epoch=1)
    run = dcgan_tf.load_run(result.paths.checkpoint_dir)
    images = run.generate(20, seed=0)                      # uint8 [20, 28, 28, 1], classes in turn
    done = run.complete(images, mask_type="center", n_iter=200)
    done.images, done.labels, done.psnr                    # completions, the classes chosen, dB over the hole

`train` takes main.py's flags as keyword arguments (or a TrainConfig); `load_run` gives a `Run` whose methods
are main.py's and complete.py's modes as functions that return arrays. The programs call the same library
functions: `run.generate` draws the images `main.py --generate_test_images` writes for the same seed, and
`run.complete` runs `completion.Completer.complete`, which complete.py runs on every batch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from dcgan_tf import runs
from dcgan_tf.complete_cli import create_classify, create_completer, draw_mask
from dcgan_tf.completion import Completion, image_seeds
from dcgan_tf.config import (
    INTERPOLATIONS,
    MASK_TYPES,
    CompleteConfig,
    TrainConfig,
    apply_preset,
    check_against_saved,
)
from dcgan_tf.decode import crop_size, prepare_array, to_l_or_rgb
from dcgan_tf.errors import DcganError, FlagError
from dcgan_tf.evaluate import evaluate_run
from dcgan_tf.export import export_generator
from dcgan_tf.images import to_uint8
from dcgan_tf.latent import sample_z
from dcgan_tf.masks import mask_from_array
from dcgan_tf.sampling import Sampler, check_label, random_z
from dcgan_tf.training import TrainResult
from dcgan_tf.training import train as train_loop
from dcgan_tf.visualize import lerp, slerp

# CompleteConfig fields that are about complete.py's files, not the numbers: not settings of Run.complete.
FILE_ONLY_SETTINGS = ("checkpoint_dir", "imgs", "out_dir", "overwrite", "mask", "mask_dir", "label", "mask_type",
                      "n_iter", "seed")


def train_config(config: TrainConfig | None = None, **settings: Any) -> TrainConfig:
    """The validated TrainConfig of `train`: `config`, or main.py's defaults with `settings` and their preset.

    Example:
      >>> train_config(dataset="fashion_mnist", preset="tuned").g_ema
      0.999
    """
    if config is not None:
        if settings:
            raise TypeError("give either a TrainConfig or settings, not both (dataclasses.replace changes a config)")
        return config.validate()
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise TypeError(f"unknown setting {unknown[0]!r}: the settings are main.py's flags (see flags.md)")
    return TrainConfig(**apply_preset({**fields, **settings}, set(settings))).validate()


def train(config: TrainConfig | None = None, **settings: Any) -> TrainResult:
    """Trains (or resumes) a run, as `main.py --train` does with the same settings.

    Args:
      config: every setting at once; or None and
      **settings: main.py's flags by name (TrainConfig's fields), the rest at main.py's defaults; a `preset`
        fills in its recipe under the settings given.

    Returns:
      the TrainResult: step, epoch, the last metrics, images per second and `paths` (run_dir,
      checkpoint_dir: the folder `load_run` takes, sample_dir).

    Raises:
      FlagError: a setting out of range, naming it.

    Example:
      >>> result = dcgan_tf.train(dataset="fashion_mnist", input_height=28, output_height=28, epoch=1,
      ...                         gf_dim=16, df_dim=16, train_size=2000)  # doctest: +SKIP
      >>> run = dcgan_tf.load_run(result.paths.checkpoint_dir)  # doctest: +SKIP
    """
    return train_loop(train_config(config, **settings))


def find_run_folder(path_or_name: str, checkpoint_dir: str = "checkpoints") -> str:
    """The checkpoint folder of a run given as its folder, a folder of runs (the newest) or its name under
    `checkpoint_dir`."""
    for candidate in (path_or_name, os.path.join(checkpoint_dir, path_or_name)):
        if os.path.isdir(candidate):
            return runs.find_run(candidate)[0]
    raise DcganError(f"no run {path_or_name!r}: give a run's checkpoint folder (e.g. checkpoints/fashion_mnist_28x28), "
                     f"a folder of runs, or the name of a run in {checkpoint_dir}")


def load_run(path_or_name: str, *, use_ema: bool = True, **overrides: Any) -> Run:
    """Loads a trained run: its networks with the latest weights, and the settings it was trained with.

    Args:
      path_or_name: a run's checkpoint folder, a folder of runs (the most recently written is taken), or a run's
        name (its --out_name) under `checkpoint_dir` (default ./checkpoints).
      use_ema: for a run trained with --g_ema, use the averaged generator (False: the trained one).
      **overrides: TrainConfig fields for the uses of the run, e.g. batch_size (images per generator call),
        data_dir, num_eval_samples; an architecture field (config.ARCHITECTURE_FIELDS) must equal the run's.

    Returns:
      a Run.

    Raises:
      DcganError: no run there; FlagError: an override differs from the run's architecture.

    Example:
      >>> run = dcgan_tf.load_run("checkpoints/fashion_mnist_28x28")  # doctest: +SKIP
      >>> run.generate(8, seed=0).shape  # doctest: +SKIP
      (8, 28, 28, 1)
    """
    folder = find_run_folder(path_or_name, overrides.get("checkpoint_dir", "checkpoints"))
    trained = runs.load_run(folder, use_ema=use_ema)
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise TypeError(f"unknown setting {unknown[0]!r}: the settings are main.py's flags (see flags.md)")
    here = {"checkpoint_dir": os.path.dirname(os.path.abspath(folder)), "out_name": os.path.basename(folder)}
    config = dataclasses.replace(trained.config, **{**here, **overrides}).validate()
    check_against_saved(config, trained.flags)
    return Run(trained, config)


@dataclasses.dataclass
class CompletionResult:
    """What `Run.complete` returns, one row per image."""

    images: np.ndarray  # uint8 [N, H, W, C] the completions: known pixels kept, G(z) blended into the hole
    generated: np.ndarray  # uint8 [N, H, W, C] G(z*) itself
    masks: np.ndarray  # float32 [N, H, W, 1] 1 = known
    labels: np.ndarray  # [N] class used (chosen when label-free); -1 for an unconditional model
    runner_up: np.ndarray  # [N] label-free: the second-best class; -1 otherwise
    losses: dict  # "contextual", "perceptual", "total" -> [N, n_iter + 1], the last column the final z's
    psnr: np.ndarray  # [N] dB over the hole against the originals (NaN without them)
    ssim: np.ndarray  # [N] SSIM over the hole against the originals (NaN without them)
    completion: Completion  # everything else: z, restarts, pilot losses, snapshots, the float images


class Run:
    """A trained run loaded by `load_run`: its networks, its settings, and main.py's and complete.py's modes."""

    def __init__(self, trained: runs.TrainedRun, config: TrainConfig):
        self.trained = trained
        self.config = config  # the run's settings, with load_run's overrides
        self.generator, self.discriminator = trained.generator, trained.discriminator

    def __repr__(self) -> str:
        return f"Run({self.checkpoint_dir!r}, step {self.step}, image_shape {self.image_shape}, y_dim {self.y_dim})"

    @property
    def checkpoint_dir(self) -> str:
        return self.trained.checkpoint_dir

    @property
    def step(self) -> int:
        return self.trained.step

    @property
    def y_dim(self) -> int:
        """Classes of a conditional model; 0 for an unconditional one."""
        return self.trained.y_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the images the generator makes and completion takes."""
        return self.config.output_height, self.config.output_width, self.trained.c_dim

    def sampler(self) -> Sampler:
        """The sampling.Sampler of this run (batches of config.batch_size)."""
        return Sampler.from_run(self.trained, self.config.batch_size)

    def generate(self, n: int | None = None, label: int | Sequence[int] | None = None, seed: int = 0,
                 z=None) -> np.ndarray:
        """Generates images: the same seed gives the same images, those `main.py --generate_test_images` writes.

        Args:
          n: number of images (with z: len(z)).
          label: conditional model: one class for all, a class per image, or None (classes take turns).
          seed: seed of the random z.
          z: [n, z_dim] latent vectors to use instead of random ones.

        Returns:
          uint8 [n, H, W, C].

        Example:
          >>> shoes = run.generate(8, label=7, seed=0)  # doctest: +SKIP
        """
        sampler = self.sampler()
        if z is None:
            if n is None:
                raise TypeError("generate needs n (the number of images) or z")
            z = random_z(sampler, n, seed=seed)
        z = np.asarray(z, np.float32).reshape(-1, sampler.z_dim)  # [n, z_dim]
        return to_uint8(sampler(z, self.one_hot(len(z), label)))

    def one_hot(self, n: int, label: int | Sequence[int] | None) -> np.ndarray:
        """Labels [n, y_dim] for `label` (see generate); FlagError naming `label` for a class the run lacks."""
        if label is None or np.ndim(label) == 0:
            check_label(label, self.y_dim)
            return self.sampler().labels(n, label)
        ids = np.asarray(label, np.int64).reshape(-1)
        if len(ids) != n:
            raise ValueError(f"label has {len(ids)} classes for {n} images")
        for class_id in set(ids.tolist()):
            check_label(class_id, self.y_dim)
        return np.eye(self.y_dim, dtype=np.float32)[ids]

    def prepare(self, images) -> np.ndarray:
        """Images as training prepared them: float32 [N, H, W, C] in [-1, 1] at the model's size and channels.

        Args:
          images: a uint8 array [H, W, C] / [N, H, W, C] (or [H, W] grey), a PIL image, or a list of them; each is
            converted, centre-cropped (a run trained with --crop, unless it is already at the output size) and
            resized as training did.
        """
        cfg = self.config
        out = (cfg.output_width, cfg.output_height)
        prepared = []
        for image in as_list(images):
            pixels = pil_pixels(image) if isinstance(image, Image.Image) else np.asarray(image)
            if pixels.dtype != np.uint8:
                raise TypeError(f"images must be uint8 arrays or PIL images, got {pixels.dtype}")
            pixels = pixels[..., None] if pixels.ndim == 2 else pixels  # [H, W, C]
            crop = crop_size(cfg.crop and (pixels.shape[1], pixels.shape[0]) != out, cfg.input_height,
                             cfg.input_width)
            prepared.append(prepare_array(pixels, c_dim=self.trained.c_dim, size=out[::-1], crop=crop))
        return np.stack(prepared).astype(np.float32) / np.float32(127.5) - np.float32(1.0)

    def prepare_masks(self, masks, n: int) -> np.ndarray:
        """Masks float32 [n, H, W, 1] (1 = known) from one mask or one per image: uint8 (>= 128 known), bool,
        float (>= 0.5 known), or PIL images (white = known), at the model's size."""
        height, width = self.image_shape[:2]
        shape = () if isinstance(masks, Image.Image) else np.shape(masks)
        one = len(shape) == 2 or shape[:1] == (height,) and shape[1:] == (width, 1)  # a PIL image: shape ()
        found = []
        for mask in ([masks] * n if one or not shape else list(masks)):
            pixels = np.asarray(mask.convert("L")) if isinstance(mask, Image.Image) else np.asarray(mask)
            pixels = pixels.reshape(pixels.shape[:2])  # [H, W]
            known = mask_from_array(pixels) if pixels.dtype == np.uint8 else (pixels >= 0.5).astype(np.float32)[
                ..., None]  # [H, W, 1]
            if known.shape[:2] != (height, width):
                raise ValueError(f"a mask is {known.shape[1]}x{known.shape[0]}; the model works on {width}x{height}")
            found.append(known)
        if len(found) != n:
            raise ValueError(f"{len(found)} masks for {n} images")
        return np.stack(found)

    def complete(self, images, masks=None, mask_type: str = "center", label: int | Sequence[int] | None = None,
                 n_iter: int = 1000, seed: int = 0, *, originals: Any = True, keys: Sequence[int] | None = None,
                 **settings: Any) -> CompletionResult:
        """Fills the missing pixels of images (semantic inpainting), as complete.py does.

        Args:
          images: uint8 arrays or PIL images (see `prepare`), prepared as training prepared them.
          masks: 1 = known (see `prepare_masks`); None draws `mask_type` masks per image from `seed`.
          mask_type: complete.py's --mask_type (not "file": give masks); with masks, "lowres" still compares
            block means (--lowres_factor).
          label: conditional model: the class of every image, one per image, or None to choose each image's
            class (a pilot of every class, ranked with the classifier next to the run as a prior).
          n_iter: updates of z.
          seed: seed of the masks and the starting z.
          originals: True: the images hold the true pixels of the holes (masks hide them), scored by PSNR and
            SSIM; an array of the originals (prepared like images); False: no scores (NaN).
          keys: a number per image that with `seed` seeds its mask and start (default its index); complete.py
            uses a hash of each image's output name.
          **settings: complete.py's other flags, e.g. lam, approach, lr, num_restarts, blend, class_search,
            pilot_iter, top_k, classifier_dir ("none": no class prior), prior_weight, batch_size, out_interval
            (snapshots every K iterations: completion.snapshot_images).

        Returns:
          a CompletionResult (uint8 images, classes chosen and runners-up, losses, PSNR/SSIM).

        Example:
          >>> done = run.complete(images, mask_type="center", n_iter=200, label=0)  # doctest: +SKIP
          >>> done.images.dtype, float(done.psnr.mean())  # doctest: +SKIP
        """
        pixels = self.prepare(images)
        n = len(pixels)
        cfg = self.complete_config(mask_type, masks, label, n_iter, seed, settings)
        keys = list(range(n)) if keys is None else list(keys)
        if masks is None:
            masks = np.stack([draw_mask(cfg, key, *self.image_shape[:2]) for key in keys])
        masks = self.prepare_masks(masks, n)
        labels = None if label is None else np.argmax(self.one_hot(n, label), axis=1)  # [n]
        classify = create_classify(cfg, self.trained)[0] if labels is None else None
        originals = pixels if originals is True else None if originals is False else self.prepare(originals)
        completer = create_completer(cfg, self.trained, min(cfg.batch_size, n))
        result = completer.complete(
            pixels, masks, labels, blend=cfg.blend, originals=originals, classify=classify,
            seeds=image_seeds(seed, keys), n_iter=cfg.n_iter, num_restarts=cfg.num_restarts,
            snapshot_every=cfg.out_interval, class_search=cfg.class_search, pilot_iter=cfg.pilot_iter or None,
            top_k=cfg.top_k, prior_weight=cfg.prior_weight)
        return CompletionResult(images=to_uint8(result.images), generated=to_uint8(result.generated), masks=masks,
                                labels=result.labels, runner_up=result.runner_up, losses=result.losses,
                                psnr=result.psnr, ssim=result.ssim, completion=result)

    def complete_config(self, mask_type: str, masks, label, n_iter: int, seed: int,
                        settings: dict[str, Any]) -> CompleteConfig:
        """complete.py's settings for `complete`, validated by name (FlagError names the argument)."""
        taken = sorted(set(settings) & set(FILE_ONLY_SETTINGS))
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(CompleteConfig)})
        if taken or unknown:
            raise TypeError(f"complete() takes no setting {(taken + unknown)[0]!r}")
        if mask_type not in MASK_TYPES:
            raise FlagError("mask_type", f"must be one of {', '.join(MASK_TYPES)}, got {mask_type!r}")
        if masks is None and mask_type == "file":
            raise FlagError("mask_type", "file: give the masks (masks=...)")
        if masks is not None:
            mask_type = "lowres" if mask_type == "lowres" else "center"  # given masks: only the pooling matters
        single = label if label is None or np.ndim(label) == 0 else None
        return CompleteConfig(checkpoint_dir=self.checkpoint_dir, mask_type=mask_type, label=single, n_iter=n_iter,
                              seed=seed, **settings).validate()

    def export(self, export_dir: str | None = None) -> str:
        """Writes the generator as a TensorFlow SavedModel (`main.py --export`). Returns the folder.

        Example:
          >>> run.export("exported/fm")  # doctest: +SKIP
        """
        export_dir = export_dir or os.path.join(self.checkpoint_dir, "export")
        source = {"checkpoint": self.trained.checkpoint_path, "step": self.step, "out_name": self.config.out_name}
        return export_generator(self.sampler(), export_dir, source=source)

    def evaluate(self, num_samples: int | None = None, seed: int = 0) -> dict:
        """FID/KID (and the classifier's scores) of generated images (`main.py --evaluate`); also writes
        eval.json into the run's out folder.

        Example:
          >>> run.evaluate(num_samples=1000)["metrics"]  # doctest: +SKIP
        """
        # load_run set checkpoint_dir and out_name so that evaluate_run finds this very run
        return evaluate_run(dataclasses.replace(self.config, seed=seed), num_samples=num_samples)

    def interpolate(self, n: int = 4, steps: int = 8, seed: int = 0, label: int | None = None,
                    method: str = "slerp") -> np.ndarray:
        """Images along paths between random z pairs (`main.py --visualize --option 5`).

        Returns:
          uint8 [n, steps, H, W, C]: row i goes from one random z to another.

        Example:
          >>> rows = run.interpolate(n=2, steps=10, method="linear")  # doctest: +SKIP
        """
        if method not in INTERPOLATIONS:
            raise FlagError("interpolation", f"must be one of {', '.join(INTERPOLATIONS)}, got {method!r}")
        ends = sample_z(tf.random.Generator.from_seed(seed), 2 * n, self.config.z_dim, self.config.z_dist).numpy()
        path = slerp if method == "slerp" else lerp
        z = np.concatenate([path(p, q, np.linspace(0.0, 1.0, steps)) for p, q in zip(ends[::2], ends[1::2])])
        rows = np.arange(n) % max(self.y_dim, 1) if label is None else np.full(n, label)  # a class per row
        images = self.generate(label=np.repeat(rows, steps) if self.y_dim else label, z=z)  # [n * steps, ...]
        return images.reshape((n, steps) + images.shape[1:])


def as_list(images) -> list:
    """One image or a batch as a list of images."""
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, np.ndarray) and (images.ndim == 2 or images.ndim == 3 and images.shape[-1] in (1, 3, 4)):
        return [images]  # [H, W] or [H, W, C]
    return list(images)


def pil_pixels(image: Image.Image) -> np.ndarray:
    """A PIL image's pixels as training reads a file: EXIF orientation applied, then "L" or "RGB" (uint8)."""
    return np.asarray(to_l_or_rgb(ImageOps.exif_transpose(image)))


__all__ = ["CompletionResult", "Run", "load_run", "train", "train_config"]
