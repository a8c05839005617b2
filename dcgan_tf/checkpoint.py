"""Saving and restoring a run: G, D, both optimisers, step, epoch, the training RNG and the fixed sample z.

TensorFlow writes a checkpoint's data and index first and only then rewrites the small `checkpoint` state
file (atomically), so a run killed mid-save never points at a partial checkpoint: `restore_latest` picks
the last complete one.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
from absl import logging

from dcgan_tf.errors import DcganError


@dataclasses.dataclass
class TrainState:
    """Everything that must survive a restart besides the networks and optimisers."""

    step: tf.Variable  # int64 global step (D updates so far)
    epoch: tf.Variable  # int64 epochs completed
    rng: tf.random.Generator  # draws z, label smoothing and instance noise in the train step
    sample_z: tf.Variable  # [sample_num, z_dim] fixed z for training sample grids
    sample_labels: tf.Variable  # [sample_num, y_dim] fixed labels for the grids
    epoch_step: tf.Variable  # int64 steps done in the current epoch (resume mid-epoch)
    nan_skipped: tf.Variable  # int64 updates skipped for non-finite values (--nan_policy skip_batch)

    @classmethod
    def create(cls, seed: int, sample_z, sample_labels) -> TrainState:
        def counter(name):
            return tf.Variable(0, dtype=tf.int64, trainable=False, name=name)

        return cls(step=counter("step"), epoch=counter("epoch"), rng=tf.random.Generator.from_seed(seed),
                   sample_z=tf.Variable(sample_z, trainable=False, name="sample_z"),
                   sample_labels=tf.Variable(sample_labels, trainable=False, name="sample_labels"),
                   epoch_step=counter("epoch_step"), nan_skipped=counter("nan_skipped"))


def create_checkpoint(G, D, g_optimizer=None, d_optimizer=None, state: TrainState | None = None,
                      extra: dict | None = None):
    """A tf.train.Checkpoint over whatever is given. Optimisers are built first so their slots restore.

    Args:
      extra: more named objects, e.g. the EMA generator (`GeneratorEma.checkpoint_items()`).
    """
    items = {"generator": G, "discriminator": D}
    for name, opt, model in (("g_optimizer", g_optimizer, G), ("d_optimizer", d_optimizer, D)):
        if opt is not None:
            if not opt.built:
                opt.build(model.trainable_variables)
            items[name] = opt
    if state is not None:
        items.update(step=state.step, epoch=state.epoch, rng=state.rng, sample_z=state.sample_z,
                     sample_labels=state.sample_labels, epoch_step=state.epoch_step, nan_skipped=state.nan_skipped)
    return tf.train.Checkpoint(**items, **(extra or {}))


def create_manager(checkpoint: tf.train.Checkpoint, directory: str, max_to_keep: int = 1):
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep, checkpoint_name="ckpt")


def restore_latest(checkpoint: tf.train.Checkpoint, directory: str, *, partial: bool = False) -> str | None:
    """Restores the newest complete checkpoint in `directory`. Returns its path, or None when there is none.

    Args:
      checkpoint: the objects to restore into.
      directory: the run's checkpoint folder.
      partial: allow the checkpoint to hold more than `checkpoint` tracks (e.g. only G for generation).
    """
    path = tf.train.latest_checkpoint(directory)
    if path is None:
        return None
    try:
        status = checkpoint.restore(path)
        if partial:
            status.expect_partial()  # the file may hold more (optimisers, ...) ...
        status.assert_existing_objects_matched()  # ... but everything asked for must be in it
    except (tf.errors.OpError, AssertionError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DcganError(f"checkpoint {path} does not match this model ({first}); check the model flags "
                         "against the run's FLAGS.json or use a new --out_name") from None
    logging.info("restored %s", path)
    return path


def save_checkpoint(manager: tf.train.CheckpointManager, step: int) -> str:
    """Saves under the global step number and returns the path; failures name the folder."""
    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as e:
        raise DcganError(f"could not write a checkpoint to {manager.directory} ({type(e).__name__}); the "
                         "previous checkpoint is intact; free space or fix permissions and re-run") from None
