"""Loading a trained run for use: its FLAGS.json, its networks with the latest weights.

Generation, export, evaluation and completion all start here, so a missing checkpoint or a flag that
disagrees with the saved run gives the same one-line error everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Collection

import tensorflow as tf

from dcgan_tf.checkpoint import create_checkpoint, restore_latest
from dcgan_tf.config import ARCHITECTURE_FIELDS, RunPaths, TrainConfig, check_against_saved, read_saved_flags
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


def with_saved_architecture(cfg: TrainConfig, given: Collection[str] = ()) -> TrainConfig:
    """A command's settings for using a saved run: the architecture flags it did not give are the run's.

    A run carries its own settings: `main.py --out_name X --generate_test_images 100` on a run trained with
    `--preset tuned` takes its --g_ema 0.999 from FLAGS.json. A flag given explicitly is kept, so one that
    differs from the run still stops with the error naming it (check_against_saved).

    Args:
      cfg: the command's settings (flag values, a --preset filled in); its out_name names the run.
      given: the names of the flags given explicitly.

    Returns:
      the validated settings; cfg itself (validated) when the run has no FLAGS.json yet.

    Example:
      >>> cfg = with_saved_architecture(TrainConfig(out_name="fm"), given={"out_name"})  # doctest: +SKIP
    """
    saved = read_saved_flags(RunPaths.from_config(cfg))
    if saved is None:
        return cfg.validate()
    inherited = {name: saved[name] for name in ARCHITECTURE_FIELDS if name in saved and name not in given}
    return dataclasses.replace(cfg, **inherited).validate()


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """A run found by `find_run`: its checkpoint folder, its FLAGS.json and when its latest checkpoint was written."""

    path: str
    flags: dict
    written: float  # modification time of the latest checkpoint's .index file


def scan_run(folder: str) -> RunFolder | None:
    """The run in `folder`, or None when it holds none.

    A run that is training rotates its checkpoints: one can vanish between reading the checkpoint state and
    reading its files. The state is then read again once, and a run still changing is left out (None).
    """
    flags_path = os.path.join(folder, "FLAGS.json")
    if not os.path.isfile(flags_path):
        return None
    for _ in range(2):
        try:
            latest = tf.train.latest_checkpoint(folder)
            if latest is None:
                return None
            written = os.path.getmtime(latest + ".index")
            with open(flags_path) as f:
                return RunFolder(folder, json.load(f), written)
        except (OSError, ValueError, tf.errors.OpError):
            continue
    return None


def find_run(checkpoint_dir: str, prefer=None) -> tuple[str, list[RunFolder]]:
    """The run to use for `--checkpoint_dir`: the folder itself if it is a run, else a run folder inside it.

    Args:
      checkpoint_dir: a run's checkpoint folder, or a folder of them.
      prefer: RunFolder -> a number, higher for a run that suits the caller better; among several runs the
        highest is taken, and of those the one whose latest checkpoint was written most recently.

    Returns:
      (the run's checkpoint folder, every run found inside; [] when checkpoint_dir is itself a run).

    Raises:
      DcganError: no run in or at checkpoint_dir; the message says how to train one.
    """
    if scan_run(checkpoint_dir) is not None:
        return checkpoint_dir, []
    names = sorted(os.listdir(checkpoint_dir)) if os.path.isdir(checkpoint_dir) else []
    runs = [run for run in (scan_run(os.path.join(checkpoint_dir, n)) for n in names) if run is not None]
    if not runs:
        raise DcganError(f"no trained run in {checkpoint_dir}: train one first (e.g. python main.py --dataset "
                         "fashion_mnist --input_height 28 --output_height 28 --train) or point "
                         "--checkpoint_dir at a run's folder")
    best = max(runs, key=lambda run: (prefer(run) if prefer else 0, run.written))
    return best.path, runs


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
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    try:
        path = restore_latest(ckpt, checkpoint_dir, partial=True)
    except DcganError:
        if tf.train.latest_checkpoint(checkpoint_dir) == latest:
            raise
        path = restore_latest(ckpt, checkpoint_dir, partial=True)  # the run saved meanwhile and rotated that one
    flags = {**flags, "step": int(step.numpy())}
    return TrainedRun(G, D, saved_cfg, flags, path, checkpoint_dir)


__all__ = ["RunFolder", "TrainedRun", "find_run", "is_run_folder", "load_run", "read_run_flags", "scan_run",
           "with_saved_architecture", "create_checkpoint"]
