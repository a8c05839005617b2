"""Loading a trained run for use: its FLAGS.json, its networks with the latest weights.

Generation, export, evaluation and completion all start here, so a missing checkpoint or a flag that
disagrees with the saved run gives the same one-line error everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf

from dcgan_tf.checkpoint import create_checkpoint, restore_latest
from dcgan_tf.config import TrainConfig, check_against_saved
from dcgan_tf.errors import DcganError
from dcgan_tf.model import models_from_config


@dataclasses.dataclass
class TrainedRun:
    """A trained generator and discriminator with the settings they were trained with."""

    generator: object  # the EMA generator of a run trained with --g_ema
    discriminator: object
    config: TrainConfig  # the saved run's settings
    flags: dict  # the saved FLAGS.json (also holds c_dim, y_dim, num_examples)
    checkpoint_path: str
    checkpoint_dir: str

    @property
    def c_dim(self) -> int:
        return int(self.flags["c_dim"])

    @property
    def y_dim(self) -> int:
        return int(self.flags["y_dim"])

    @property
    def step(self) -> int:
        return int(self.flags.get("step", 0))


def read_run_flags(checkpoint_dir: str) -> dict:
    """FLAGS.json of the run whose checkpoints are in `checkpoint_dir`; DcganError naming the folder if absent."""
    path = os.path.join(checkpoint_dir, "FLAGS.json")
    if not os.path.exists(path) or tf.train.latest_checkpoint(checkpoint_dir) is None:
        raise DcganError(f"no trained checkpoint in {checkpoint_dir}: train first with the same --dataset, sizes "
                         "and --out_name (and --checkpoint_dir), or point --checkpoint_dir at a run")
    with open(path) as f:
        return json.load(f)


def is_run_folder(folder: str) -> bool:
    """Whether `folder` holds a trained run: its FLAGS.json and at least one checkpoint."""
    return os.path.isfile(os.path.join(folder, "FLAGS.json")) and tf.train.latest_checkpoint(folder) is not None


def find_run(checkpoint_dir: str) -> tuple[str, list[str]]:
    """The run to use for `--checkpoint_dir`: the folder itself if it is a run, else the run folder inside it.

    With several runs inside, the one whose latest checkpoint was written most recently is taken.

    Returns:
      (the run's checkpoint folder, every run folder found; [] when checkpoint_dir is itself a run).

    Raises:
      DcganError: no run in or at checkpoint_dir; the message says how to train one.
    """
    if is_run_folder(checkpoint_dir):
        return checkpoint_dir, []
    names = sorted(os.listdir(checkpoint_dir)) if os.path.isdir(checkpoint_dir) else []
    runs = [os.path.join(checkpoint_dir, n) for n in names if is_run_folder(os.path.join(checkpoint_dir, n))]
    if not runs:
        raise DcganError(f"no trained run in {checkpoint_dir}: train one first (e.g. python main.py --dataset "
                         "fashion_mnist --input_height 28 --output_height 28 --train) or point "
                         "--checkpoint_dir at a run's folder")
    newest = max(runs, key=lambda run: os.path.getmtime(tf.train.latest_checkpoint(run) + ".index"))
    return newest, runs


def load_run(checkpoint_dir: str, cfg: TrainConfig | None = None, *, use_ema: bool = True) -> TrainedRun:
    """Builds the saved run's networks and restores their latest weights.

    Args:
      checkpoint_dir: a run's checkpoint folder (`{--checkpoint_dir}/{out_name}`).
      cfg: this command's settings; when given, every architecture flag must match the saved run
        (FlagError names the first that differs).
      use_ema: for a run trained with --g_ema, load the averaged generator (False: the trained one).
    """
    flags = read_run_flags(checkpoint_dir)
    if cfg is not None:
        check_against_saved(cfg, flags)
    saved_cfg = TrainConfig.from_dict(flags)
    G, D = models_from_config(saved_cfg, int(flags["c_dim"]), int(flags["y_dim"]))
    step = tf.Variable(0, dtype=tf.int64, name="step")
    # A run trained with --g_ema is used through its averaged generator, everywhere.
    g_key = "generator_ema" if saved_cfg.g_ema > 0 and use_ema else "generator"
    ckpt = tf.train.Checkpoint(**{g_key: G}, discriminator=D, step=step)
    path = restore_latest(ckpt, checkpoint_dir, partial=True)
    flags = {**flags, "step": int(step.numpy())}
    return TrainedRun(G, D, saved_cfg, flags, path, checkpoint_dir)


__all__ = ["TrainedRun", "find_run", "is_run_folder", "load_run", "read_run_flags", "create_checkpoint"]
