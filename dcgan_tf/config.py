"""The resolved, validated settings of a run, and where its files live.

`main.py` turns absl flags into one `TrainConfig`; the library never reads flags itself. Field names are the
flag names, so an error about a field names the flag the user typed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from dcgan_tf.errors import FlagError, check_choice, check_range, check_whole_numbers

LABELLED_DATASETS = ("mnist", "fashion_mnist")
Z_DISTS = ("uniform_signed", "uniform_unsigned", "normal01")
LOSSES = ("gan", "minimax", "lsgan", "hinge", "wgan-gp")
ARCHS = ("dcgan", "mlp", "infogan")
D_NORMS = ("auto", "batch", "layer", "none")
NAN_POLICIES = ("stop", "skip_batch")
IDX_SPLITS = ("all", "train")
EVAL_FEATURES = ("auto", "classifier", "inception")
STRATEGIES = ("default", "mirrored", "multi_worker")

# Named recipes: flag values a preset sets unless the flag is given explicitly. "tuned" is the best recipe found
# for conditional Fashion-MNIST / MNIST within 18 CPU-minutes (bench/recipes.py; README "Recipes").
PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "tuned": {"mixed_precision": True, "g_ema": 0.999, "g_steps": 1, "learning_rate_d": 0.0004,
              "learning_rate_g": 0.0002},
}

# Fields that fix the shape of the networks: a saved run and a new command must agree on them.
ARCHITECTURE_FIELDS = (
    "output_height", "output_width", "z_dim", "z_dist", "gf_dim", "df_dim", "gfc_dim", "dfc_dim", "conditional",
    "arch", "d_norm", "spectral_norm", "g_ema",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; defaults are the flags' defaults."""

    # Data
    dataset: str = "celebA"
    data_dir: str = "./data"
    input_fname_pattern: str = "*.jpg"
    input_height: int = 108
    input_width: int | None = None  # None: same as input_height
    output_height: int = 64
    output_width: int | None = None  # None: same as output_height
    crop: bool = False
    flip: bool = False
    train_size: float = math.inf  # images per epoch at most
    idx_split: str = "all"  # mnist / fashion_mnist: "all" (train + test, as carpedm20) or "train" (test held out)
    # Model
    z_dim: int = 100
    z_dist: str = "uniform_signed"
    gf_dim: int = 64
    df_dim: int = 64
    gfc_dim: int = 1024
    dfc_dim: int = 1024
    conditional: bool | None = None  # None: on for labelled datasets (mnist, fashion_mnist)
    arch: str = "dcgan"  # dcgan | mlp | infogan
    d_norm: str = "auto"  # D's normalisation: batch | layer | none; auto: layer for wgan-gp, else batch
    spectral_norm: bool = False  # spectral normalisation of D's layers
    g_ema: float = 0.0  # decay of an exponential moving average of G's weights (0 = off), used for every output
    # Optimisation
    epoch: int = 25
    batch_size: int = 64
    learning_rate: float = 0.0002
    learning_rate_d: float | None = None  # None: learning_rate
    learning_rate_g: float | None = None  # None: learning_rate
    beta1: float = 0.5
    g_steps: int = 2
    d_steps: int = 1  # D (critic) updates per step, each on its own real batch
    loss: str = "gan"
    gp_weight: float = 10.0  # weight of the WGAN-GP gradient penalty
    label_smoothing: float = 0.0
    instance_noise: float = 0.0
    lr_decay_every: int = 0  # epochs; 0 = no decay
    lr_decay: float = 1.0
    seed: int = 0
    nan_policy: str = "stop"  # stop | skip_batch: what a non-finite loss does
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time; 0 = no limit
    preset: str = "none"  # the named recipe the flags came from (see PRESETS); part of the default run name
    # Speed
    mixed_precision: bool = False  # bfloat16 compute on CPU, float16 + loss scaling on GPU
    jit_compile: bool | None = None  # XLA; None (auto): on with a GPU under --strategy default, off on CPU
    strategy: str = "default"  # default (no tf.distribute) | mirrored (local GPUs) | multi_worker (TF_CONFIG)
    # Evaluation
    eval_freq: int = 0  # steps between quality measurements during training; 0 = off
    eval_samples: int = 1000  # generated images per measurement during training
    num_eval_samples: int = 10000  # generated images for --evaluate
    eval_features: str = "auto"  # classifier | inception | auto (classifier for mnist/fashion_mnist)
    fid_weights: str = ""  # local InceptionV3 (no top) weights file for inception features
    classifier_dir: str = ""  # "": checkpoints/classifier_<dataset>
    # Outputs
    out_dir: str = "out"
    out_name: str = ""  # "": derived from the dataset and sizes
    checkpoint_dir: str = "checkpoints"
    sample_dir: str = "samples"
    max_to_keep: int = 1
    sample_freq: int = 200
    ckpt_freq: int = 200
    log_freq: int = 20
    sample_num: int = 64

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
        for name, choices in (("z_dist", Z_DISTS), ("loss", LOSSES), ("idx_split", IDX_SPLITS), ("arch", ARCHS),
                              ("d_norm", D_NORMS), ("preset", tuple(PRESETS)), ("nan_policy", NAN_POLICIES),
                              ("eval_features", EVAL_FEATURES), ("strategy", STRATEGIES)):
            check_choice(name, getattr(self, name), choices)
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


def write_text_atomic(path: str, text: str, *, fsync: bool = False) -> None:
    """Writes text to a temporary file and renames it into place, so readers never see half a file.

    Args:
      fsync: flush the file to disk before the rename (survives a power cut, not only a killed process).
    """
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        f.write(text)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: str, obj: Any) -> None:
    """Writes JSON atomically (see write_text_atomic)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


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
