"""The resolved, validated settings of a run, and where its files live.

`main.py` turns absl flags into one `TrainConfig` (and a `ModeConfig`), complete.py into a `CompleteConfig`,
`python -m dcgan_tf.classifier` into a `ClassifierConfig` (`prepare.PrepareConfig` lives with its library
function); the library never reads flags itself. Field names are the flag names, so an error about a field
names the flag the user typed.

This module is imported before TensorFlow loads (the programs hide its start-up lines first), so it imports
no module that loads TensorFlow: a word list it takes from its domain comes from a light module (masks).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from dcgan_tf.errors import FlagError, check_choice, check_range, check_whole_numbers
from dcgan_tf.masks import HALF_SIDES, MASK_TYPES

LABELLED_DATASETS = ("mnist", "fashion_mnist")
Z_DISTS = ("uniform_signed", "uniform_unsigned", "normal01")
LOSSES = ("gan", "minimax", "lsgan", "hinge", "wgan-gp")
ARCHS = ("dcgan", "mlp", "infogan")
D_NORMS = ("auto", "batch", "layer", "none")  # auto, then ops.D_NORMS (ops loads TensorFlow; tests/test_ops.py)
NAN_POLICIES = ("stop", "skip_batch")
IDX_SPLITS = ("all", "train")
EVAL_FEATURES = ("auto", "classifier", "inception")
STRATEGIES = ("default", "mirrored", "multi_worker")

INTERPOLATIONS = ("linear", "slerp")
# complete.py
APPROACHES = ("momentum", "adam")  # optimisers of z
BLENDS = ("poisson", "none")
CLASS_SEARCHES = ("pilot", "all")  # label-free class choice of a conditional model (see completion.Completer)
# Chosen on held-out test images that the completion benchmark does not use (bench/class_choice.py; docs/completion.md):
DEFAULT_PRIOR_WEIGHT = 0.2  # weight of the classifier's log-probabilities against the log of the total loss
MASKED_CLASSIFIER_SUFFIX = "_masked"  # classifier_<dataset>_masked: trained with --mask_augment, the class prior's
VISUALIZE_OPTIONS = {
    0: "a grid of random samples",
    1: "one PNG per z dimension, sweeping it from one base z",
    2: "GIFs sweeping randomly chosen dimensions around a small random base z",
    3: "one GIF per z dimension, sweeping it from the centre of the z range",
    4: "one GIF whose frames are grids of every dimension's sweep",
    5: "interpolation between random z pairs (--interpolation linear|slerp), a grid and a GIF",
}


def setting(default: Any, help_text: str, *, choices: Any = None) -> Any:
    """A config field that is also a command-line flag: its default, its help text and, for an enum flag, its
    choices. `dcgan_tf.cli.define_flags` turns every such field into the absl flag of the same name; --help
    shows an enum flag's choices before its help text, so the help text need not list them."""
    return dataclasses.field(default=default, metadata={"help": help_text, "choices": choices})


def check_choices(cfg: Any, names: Any = None) -> None:
    """FlagError for the first field of the config `cfg` (of `names`, default all) outside its setting's choices:
    the check of a config built in Python, whose values absl did not parse."""
    for field in dataclasses.fields(cfg):
        choices = field.metadata.get("choices")
        if choices is not None and (names is None or field.name in names):
            check_choice(field.name, getattr(cfg, field.name), tuple(choices))


# Named recipes: flag values a preset sets unless the flag is given explicitly. "tuned" is the best recipe found
# for conditional Fashion-MNIST / MNIST within 18 CPU-minutes (bench/recipes.py; docs/training.md); its precision
# is auto (None): mixed only where the hardware computes it fast (hardware.resolve_precision).
PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "tuned": {"mixed_precision": None, "g_ema": 0.999, "g_steps": 1, "learning_rate_d": 0.0004,
              "learning_rate_g": 0.0002},
}

# Fields that fix the shape of the networks: a saved run and a new command must agree on them.
ARCHITECTURE_FIELDS = (
    "output_height", "output_width", "z_dim", "z_dist", "gf_dim", "df_dim", "gfc_dim", "dfc_dim", "conditional",
    "arch", "d_norm", "spectral_norm", "g_ema",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; each field is the main.py flag of the same name (`setting`)."""

    # Data
    dataset: str = setting("celebA", "Folder under --data_dir, or mnist / fashion_mnist, or a tfds name.")
    data_dir: str = setting("./data", "Where datasets live.")
    input_fname_pattern: str = setting("*.jpg", "Glob for image files inside the dataset folder.")
    input_height: int = setting(108, "Height of the centre crop taken from each image (with --crop).")
    input_width: int | None = setting(None, "Width of the centre crop; default: --input_height.")
    output_height: int = setting(64, "Height of the images the model generates.")
    output_width: int | None = setting(None, "Width of generated images; default: --output_height.")
    crop: bool = setting(False, "Centre-crop input_height x input_width before resizing.")
    flip: bool = setting(False, "Random horizontal flips of training images.")
    train_size: float = setting(math.inf, "Images per epoch at most.")
    idx_split: str = setting("all", "mnist / fashion_mnist: all trains on train + test (as carpedm20), train keeps the "
                                    "test split held out.", choices=IDX_SPLITS)
    # Model
    z_dim: int = setting(100, "Dimension of the latent z.")
    z_dist: str = setting("uniform_signed", "Distribution of z.", choices=Z_DISTS)
    gf_dim: int = setting(64, "Generator filters in the last conv layer.")
    df_dim: int = setting(64, "Discriminator filters in the first conv layer.")
    gfc_dim: int = setting(1024, "Generator fully connected units (conditional model).")
    dfc_dim: int = setting(1024, "Discriminator fully connected units (conditional model).")
    conditional: bool | None = setting(None, "Condition on labels; default: on for mnist and fashion_mnist.")
    arch: str = setting("dcgan", "Networks: dcgan is carpedm20's, mlp fully connected, infogan InfoGAN-style 28x28 "
                                 "convnets.", choices=ARCHS)
    d_norm: str = setting("auto", "D's normalisation layers; auto: layer for wgan-gp, else batch.", choices=D_NORMS)
    spectral_norm: bool = setting(False, "Spectrally normalise D's layers.")
    g_ema: float = setting(0.0, "Decay of an exponential moving average of G's weights, used for every output "
                                "(samples, evaluation, export, completion); 0 = off, typical 0.999.")
    # Optimisation
    epoch: int = setting(25, "Epochs to train.")
    seed: int = setting(0, "Seed of every random draw.")
    batch_size: int = setting(64, "Images per batch.")
    learning_rate: float = setting(0.0002, "Adam learning rate of both networks.")
    learning_rate_d: float | None = setting(None, "Adam learning rate of D; default: --learning_rate.")
    learning_rate_g: float | None = setting(None, "Adam learning rate of G; default: --learning_rate.")
    beta1: float = setting(0.5, "Adam beta1.")
    g_steps: int = setting(2, "G updates per step, with the z of the step's last D update.")
    d_steps: int = setting(1, "D (critic) updates per step, each on its own real batch (e.g. 5 for wgan-gp).")
    loss: str = setting("gan", "GAN loss: gan is non-saturating BCE, minimax the saturating one, lsgan least squares.",
                        choices=LOSSES)
    gp_weight: float = setting(10.0, "Weight of the WGAN-GP gradient penalty (--loss wgan-gp).")
    label_smoothing: float = setting(0.0, "One-sided smoothing: real targets ~ U(L, 1); 0 = off.")
    instance_noise: float = setting(0.0, "Gaussian noise on real images, stddev ~ U(0, S) per batch; 0 = off.")
    lr_decay_every: int = setting(0, "Multiply learning rates by --lr_decay every N epochs; 0 = off.")
    lr_decay: float = setting(1.0, "Step decay factor.")
    max_minutes: float = setting(0.0, "Stop with a checkpoint after this many minutes; 0 = no limit.")
    nan_policy: str = setting("stop", "Non-finite loss: stop keeps the last good checkpoint; skip_batch skips the "
                                      "update and counts it.", choices=NAN_POLICIES)
    preset: str = setting("none", "A named recipe that sets several flags (see flags.md); flags you give explicitly "
                                  "win.", choices=PRESETS)
    # Speed
    mixed_precision: bool | None = setting(None, "Mixed precision: bfloat16 compute on CPU, float16 with loss scaling "
                                                 "on GPU; auto: on where this hardware computes it fast (a CPU with "
                                                 "avx512_bf16 or amx_bf16, a GPU of compute capability >= 7.0); a "
                                                 "resumed run keeps its precision.")
    jit_compile: bool | None = setting(None, "Compile the train step with XLA; default (auto): on with a GPU under "
                                             "--strategy default, off on CPU (slower there for transposed convs).")
    strategy: str = setting("default", "Devices: default is one, mirrored every local GPU, multi_worker the machines "
                                       "in TF_CONFIG.", choices=STRATEGIES)
    # Evaluation
    eval_freq: int = setting(0, "Measure FID/KID every N training steps (TensorBoard `fid`); 0 = off.")
    eval_samples: int = setting(1000, "Generated images per measurement during training.")
    num_eval_samples: int = setting(10000, "Generated images for --evaluate.")
    eval_features: str = setting("auto", "Feature extractor: classifier for 28x28 labelled data, inception otherwise "
                                         "(auto chooses).", choices=EVAL_FEATURES)
    fid_weights: str = setting("", "Local InceptionV3 (include_top=False) weights file for inception features.")
    classifier_dir: str = setting("", "Trained classifier folder; default checkpoints/classifier_<dataset>.")
    # Outputs
    out_dir: str = setting("out", "Parent of run folders (FLAGS.json, TensorBoard logs).")
    out_name: str = setting("", "Run folder name; default: derived from dataset and sizes.")
    checkpoint_dir: str = setting("checkpoints", "Parent of run checkpoint folders.")
    sample_dir: str = setting("samples", "Parent of run sample folders.")
    max_to_keep: int = setting(1, "Checkpoints to keep.")
    sample_freq: int = setting(200, "Write a sample grid every N steps.")
    ckpt_freq: int = setting(200, "Write a checkpoint every N steps (and at each epoch's end).")
    log_freq: int = setting(20, "Write summaries and update the progress bar every N steps.")
    sample_num: int = setting(64, "Images in training sample grids.")

    def __post_init__(self):
        # Resolve the "same as" defaults so every consumer sees concrete values.
        if self.input_width is None:
            object.__setattr__(self, "input_width", self.input_height)
        if self.output_width is None:
            object.__setattr__(self, "output_width", self.output_height)
        if self.learning_rate_d is None:
            object.__setattr__(self, "learning_rate_d", self.learning_rate)
        if self.learning_rate_g is None:
            object.__setattr__(self, "learning_rate_g", self.learning_rate)
        if self.conditional is None:
            object.__setattr__(self, "conditional", self.dataset.lower() in LABELLED_DATASETS)
        if self.d_norm == "auto":  # the gradient penalty is per sample, which batch norm breaks
            object.__setattr__(self, "d_norm", "layer" if self.loss == "wgan-gp" else "batch")
        if not self.out_name:
            object.__setattr__(self, "out_name", default_out_name(self))

    def validate(self) -> TrainConfig:
        """Checks ranges and choices; raises FlagError naming the flag. Returns self."""
        check_whole_numbers(self, ("input_height", "input_width", "output_height", "output_width", "z_dim", "gf_dim",
                                   "df_dim", "gfc_dim", "dfc_dim", "epoch", "batch_size", "g_steps", "d_steps",
                                   "max_to_keep",
                                   "sample_freq", "ckpt_freq", "log_freq", "sample_num"))
        check_whole_numbers(self, ("eval_samples", "num_eval_samples"), minimum=2)
        check_whole_numbers(self, ("lr_decay_every", "eval_freq"), minimum=0)
        for name in ("learning_rate", "learning_rate_d", "learning_rate_g"):
            check_range(name, getattr(self, name), getattr(self, name) > 0, "> 0")
        check_range("train_size", self.train_size, self.train_size >= 1, ">= 1")
        check_range("beta1", self.beta1, 0 <= self.beta1 < 1, "in [0, 1)")
        check_range("label_smoothing", self.label_smoothing, 0 <= self.label_smoothing < 1, "in [0, 1) (0 = off)")
        check_range("instance_noise", self.instance_noise, 0 <= self.instance_noise <= 1, "in [0, 1] (0 = off)")
        check_range("lr_decay", self.lr_decay, 0 < self.lr_decay <= 1, "in (0, 1]")
        check_range("g_ema", self.g_ema, 0 <= self.g_ema < 1, "in [0, 1) (0 = off; typical 0.999)")
        check_range("gp_weight", self.gp_weight, self.gp_weight >= 0, ">= 0")
        check_range("max_minutes", self.max_minutes, self.max_minutes >= 0, ">= 0 (0 = no limit)")
        check_choices(self)
        if self.loss == "wgan-gp":
            if self.d_norm == "batch":
                raise FlagError("d_norm", "is batch, which mixes samples and breaks the per-sample gradient penalty "
                                          "of --loss wgan-gp; use layer (the default for wgan-gp) or none")
            if self.label_smoothing:
                raise FlagError("label_smoothing", "has no meaning for --loss wgan-gp (a critic has no targets); "
                                                   "set it to 0")
        if self.arch == "infogan":
            for name in ("output_height", "output_width"):
                size = getattr(self, name)
                if size % 4 or size < 16:
                    raise FlagError(name, f"is {size}, but --arch infogan needs a multiple of 4 that is >= 16 "
                                          "(e.g. 28)")
        if self.strategy != "default" and self.jit_compile:
            raise FlagError("jit_compile", f"XLA cannot compile the step of --strategy {self.strategy}: TensorFlow "
                                           "compiles it for one device, and each replica's step reads variables on "
                                           "the others (XLA known issue tfvariable_on_a_different_device); drop it "
                                           "or use --strategy default")
        if not self.dataset:
            raise FlagError("dataset", "must name a folder under --data_dir or a known dataset")
        return self

    @property
    def images_per_step(self) -> int:
        """Real images one train step consumes: --batch_size for each of its --d_steps D updates."""
        return self.batch_size * self.d_steps

    @property
    def y_dim(self) -> int:
        """Number of label classes the model is conditioned on (0 = unconditional)."""
        return 10 if self.conditional else 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["train_size"] == math.inf:
            d["train_size"] = "inf"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if d.get("train_size") == "inf":
            d["train_size"] = math.inf
        return cls(**d)


def default_out_name(cfg: TrainConfig) -> str:
    """A run name derived from the dataset and sizes, never a timestamp, so re-runs find their checkpoints."""
    name = f"{cfg.dataset}_{cfg.output_height}x{cfg.output_width}"
    if cfg.crop:
        name += f"_crop{cfg.input_height}x{cfg.input_width}"
    if cfg.preset != "none":
        name += f"_{cfg.preset}"
    return name


def apply_preset(values: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """Flag values with values["preset"]'s recipe filled in, except for the flags in `explicit` (typed by the user).

    An unknown preset is left for TrainConfig.validate to report.
    """
    recipe = PRESETS.get(values.get("preset", "none"), {})
    return {**values, **{k: v for k, v in recipe.items() if k not in explicit}}


@dataclasses.dataclass(frozen=True)
class ModeConfig:
    """What main.py does with a run: train it, evaluate it, or use it (generate, visualize, export)."""

    train: bool = setting(False, "Train (resuming the run if it has a checkpoint).")
    evaluate: bool = setting(False, "Measure FID/KID (and classifier score/accuracy) of --num_eval_samples images of "
                                    "the trained model; writes <out_dir>/<out_name>/eval.json (without --train).")
    generate_test_images: int = setting(0, "Write N single test images and a grid (without --train).")
    label: int | None = setting(None, "Class of generated images (conditional model); default: all classes.")
    visualize: bool = setting(False, "Write latent-space pictures of --option (without --train).")
    option: int = setting(0, "Visualization: 0 grid, 1 sweep PNGs, 2 random-dim GIFs, 3 per-dim GIFs, 4 merged "
                             "GIF, 5 interpolation.", choices=tuple(VISUALIZE_OPTIONS))
    interpolation: str = setting("slerp", "Path between z pairs of --option 5.", choices=INTERPOLATIONS)
    sweep_steps: int | None = setting(None, "Values per sweep or interpolation; default: --batch_size.")
    export: bool = setting(False, "Export the generator as a TensorFlow SavedModel (without --train).")
    export_dir: str = setting("", "Export folder; default: <checkpoint_dir>/<out_name>/export.")

    def validate(self) -> ModeConfig:
        """Checks the use-a-trained-model settings (ignored by --train and --evaluate); FlagError names the flag."""
        if self.train or self.evaluate:
            return self
        check_range("generate_test_images", self.generate_test_images, self.generate_test_images >= 0,
                    ">= 0 (0 = off)")
        check_choices(self)
        if self.sweep_steps is not None:
            check_range("sweep_steps", self.sweep_steps, self.sweep_steps >= 2, ">= 2")
        for name, changed, mode in (("option", self.option != 0, "visualize"),
                                    ("interpolation", self.interpolation != "slerp", "visualize"),
                                    ("sweep_steps", self.sweep_steps is not None, "visualize"),
                                    ("export_dir", bool(self.export_dir), "export")):
            if changed and not getattr(self, mode):
                raise FlagError(name, f"only applies with --{mode}; add --{mode}")
        return self

    def use_options(self) -> dict[str, Any]:
        """The keyword arguments of `generate.use_trained_model`."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("train", "evaluate")}


# Settings that do not change a completion: a re-run may differ in them and still skip finished images.
# The run is compared by its checkpoint file instead of the spelling of --checkpoint_dir.
OUTPUT_ONLY_FIELDS = ("checkpoint_dir", "imgs", "out_dir", "batch_size", "out_interval", "overwrite")


@dataclasses.dataclass(frozen=True)
class CompleteConfig:
    """Every setting of complete.py; each field is the flag of the same name (`config.setting`)."""

    checkpoint_dir: str = setting("checkpoints", "A trained run's checkpoint folder, or a folder of runs (of those "
                                                 "that fit the images' channels and size, the newest is used).")
    imgs: tuple[str, ...] = setting((), "Images: comma-separated paths, globs or folders (positional paths work too).")
    out_dir: str = setting("completions", "Output folder: one sub-folder per image and summary.json.")
    # Masks
    mask_type: str = setting("center", "Which pixels are missing (flags.md describes each type).", choices=MASK_TYPES)
    center_scale: float = setting(0.25, "center: missing [l:u] with l = int(S*scale), u = int(S*(1-scale)).")
    random_fraction: float = setting(0.8, "random: fraction of pixel positions missing.")
    half_side: str = setting("random", "half: the missing half; random draws one per image.", choices=HALF_SIDES)
    mask: str = setting("", "file: one mask PNG for every image (white = known), at the model's size.")
    mask_dir: str = setting("", "file: a folder of mask PNGs named like the images.")
    lowres_factor: int = setting(8, "lowres: compare images averaged over blocks of this size.")
    # Loss and optimisation
    weighted_mask: bool = setting(True, "Weight known pixels by the missing fraction of their window.")
    window: int = setting(7, "Odd window size of --weighted_mask.")
    lam: float = setting(0.1, "Weight of the perceptual (adversarial) loss.")
    approach: str = setting("momentum", "Optimiser of z.", choices=APPROACHES)
    lr: float = setting(0.01, "Learning rate of z.")
    momentum: float = setting(0.9, "momentum: the momentum.")
    beta1: float = setting(0.9, "adam: beta1.")
    beta2: float = setting(0.999, "adam: beta2.")
    eps: float = setting(1e-8, "adam: epsilon.")
    n_iter: int = setting(1000, "Updates of z.")
    num_restarts: int = setting(1, "Starting points per image; the lowest final loss wins.")
    label: int | None = setting(None, "Conditional models: the class of every image; default: choose per image.")
    class_search: str = setting("pilot", "Without --label: pilot runs every class for --pilot_iter, then the --top_k "
                                         "best in full; all runs every class in full (10x the time).",
                                choices=CLASS_SEARCHES)
    pilot_iter: int = setting(0, "Iterations of the pilot of every class; 0 = n_iter // 10.")
    top_k: int = setting(1, "Classes completed in full after the pilot (1: the pilot decides).")
    classifier_dir: str = setting("", "Classifier of the class prior; default <checkpoints>/classifier_<dataset> "
                                      "when present; none = no prior.")
    prior_weight: float = setting(DEFAULT_PRIOR_WEIGHT,
                                  "Weight of the classifier's log p(class) against log(total loss).")
    batch_size: int = setting(64, "Images optimised together.")
    seed: int = setting(0, "Seed of the masks and starting points.")
    # Outputs
    blend: str = setting("poisson", "How G(z) fills the hole: poisson blends it exactly, none pastes it.",
                         choices=BLENDS)
    out_interval: int = setting(0, "Snapshots and a progress GIF every N iterations; 0 = final only.")
    overwrite: bool = setting(False, "Redo images that are already completed in --out_dir.")

    def validate(self) -> CompleteConfig:
        """Checks ranges, choices and combinations; raises FlagError naming the flag. Returns self."""
        if not self.checkpoint_dir:
            raise FlagError("checkpoint_dir", "is empty: give a run's checkpoint folder (e.g. "
                                              "checkpoints/fashion_mnist_28x28) or a folder of runs")
        check_whole_numbers(self, ("n_iter", "batch_size", "num_restarts", "top_k"))
        check_whole_numbers(self, ("pilot_iter",), minimum=0)
        check_choices(self)
        check_range("prior_weight", self.prior_weight, self.prior_weight >= 0, ">= 0")
        if self.classifier_dir not in ("", "none") and not os.path.isdir(self.classifier_dir):
            raise FlagError("classifier_dir", f"{self.classifier_dir} is not a folder (\"none\" turns the prior off)")
        check_range("center_scale", self.center_scale, 0 < self.center_scale < 0.5, "in (0, 0.5)")
        check_range("random_fraction", self.random_fraction, 0 <= self.random_fraction < 1, "in [0, 1)")
        check_range("lam", self.lam, self.lam >= 0, ">= 0")
        check_range("lr", self.lr, self.lr > 0, "> 0")
        check_range("eps", self.eps, self.eps > 0, "> 0")
        for name in ("momentum", "beta1", "beta2"):
            check_range(name, getattr(self, name), 0 <= getattr(self, name) < 1, "in [0, 1)")
        check_range("window", self.window, self.window >= 1 and self.window % 2 == 1, "an odd number >= 1")
        check_range("lowres_factor", self.lowres_factor, self.lowres_factor >= 2, ">= 2")
        check_range("out_interval", self.out_interval, self.out_interval >= 0, ">= 0 (0 = no snapshots)")
        self._validate_mask_files()
        return self

    def _validate_mask_files(self) -> None:
        if self.mask and self.mask_dir:
            raise FlagError("mask", "give --mask (one PNG for all images) or --mask_dir (one per image), not both")
        if self.mask_type == "file" and not (self.mask or self.mask_dir):
            raise FlagError("mask_type", "file needs --mask PATH or --mask_dir DIR (white = known)")
        for flag in ("mask", "mask_dir"):
            if getattr(self, flag) and self.mask_type != "file":
                raise FlagError(flag, f"is only read with --mask_type file, not {self.mask_type}")
        if self.mask and not os.path.isfile(self.mask):
            raise FlagError("mask", f"{self.mask} is not a file")
        if self.mask_dir and not os.path.isdir(self.mask_dir):
            raise FlagError("mask_dir", f"{self.mask_dir} is not a folder")

    def result_settings(self) -> dict:
        """The settings that determine a completion (stored in summary.json and checked on re-runs)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in OUTPUT_ONLY_FIELDS}


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Every setting of `python -m dcgan_tf.classifier`; each field is the flag of the same name (`setting`)."""

    dataset: str = setting("fashion_mnist", "Labelled idx dataset.", choices=LABELLED_DATASETS)
    data_dir: str = setting("./data", "Folder holding <dataset>/ (or <data-set>/) with the idx files.")
    epochs: int = setting(5, "Passes over the training set.")
    batch_size: int = setting(128, "Images per training step.")
    seed: int = setting(0, "Seeds weights, dropout and shuffling.")
    mask_augment: float = setting(0.0, "Fraction of training images shown with a random hole, smoothly filled: the "
                                       "classifier of complete.py's class prior (0.8 is a good value).")
    classifier_out: str = setting("", "Folder to save the classifier in (default: checkpoints/classifier_<dataset>, "
                                      "plus _masked with --mask_augment).")

    def validate(self) -> ClassifierConfig:
        """Checks choices and ranges; raises FlagError naming the flag. Returns self."""
        check_choices(self)
        check_whole_numbers(self, ("epochs", "batch_size"))
        check_range("mask_augment", self.mask_augment, 0.0 <= self.mask_augment <= 1.0,
                    "a fraction of the training images, in [0, 1]")
        return self

    @property
    def out(self) -> str:
        """--classifier_out, or checkpoints/classifier_<dataset> (with the suffix _masked with --mask_augment)."""
        suffix = MASKED_CLASSIFIER_SUFFIX if self.mask_augment else ""
        return self.classifier_out or os.path.join("checkpoints", f"classifier_{self.dataset}{suffix}")


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Where one run's files go: logs and FLAGS.json, checkpoints, samples."""

    run_dir: str  # {out_dir}/{out_name}: FLAGS.json and TensorBoard event files
    checkpoint_dir: str  # {checkpoint_dir}/{out_name}
    sample_dir: str  # {sample_dir}/{out_name}

    @classmethod
    def from_config(cls, cfg) -> RunPaths:
        return cls(
            run_dir=os.path.join(cfg.out_dir, cfg.out_name),
            checkpoint_dir=os.path.join(cfg.checkpoint_dir, cfg.out_name),
            sample_dir=os.path.join(cfg.sample_dir, cfg.out_name),
        )

    @property
    def flags_json(self) -> str:
        return os.path.join(self.run_dir, "FLAGS.json")

    def make_dirs(self) -> None:
        for d in (self.run_dir, self.checkpoint_dir, self.sample_dir):
            os.makedirs(d, exist_ok=True)


def read_saved_flags(paths: RunPaths) -> dict[str, Any] | None:
    """The FLAGS.json of a previous run, or None when there is none."""
    for path in (paths.flags_json, os.path.join(paths.checkpoint_dir, "FLAGS.json")):
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
    return None


def check_against_saved(cfg: TrainConfig, saved: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Raises FlagError naming the first architecture flag that differs from the saved run's FLAGS.json.

    Args:
      cfg: the settings of this command.
      saved: the saved run's FLAGS.json.
      extra: data-derived values of this command (e.g. c_dim) to compare as well.
    """
    mine = cfg.to_dict()
    where = f"the saved run {cfg.out_name!r}"
    for name in ARCHITECTURE_FIELDS:
        if name in saved and saved[name] != mine[name]:
            raise FlagError(name, f"is {mine[name]!r} but {where} was trained with {saved[name]!r}; use the "
                                  "same value or a new --out_name")
    for name, value in (extra or {}).items():  # facts of the data, e.g. c_dim: blame the data flags
        if name in saved and saved[name] != value:
            raise FlagError("dataset", f"gives {name}={value!r} but {where} was trained with {name}="
                                       f"{saved[name]!r}; use the same data or a new --out_name")
