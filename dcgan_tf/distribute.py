"""Training on several devices or machines: the tf.distribute side of `--strategy`.

`default` is no strategy at all: every helper here hands back what it was given, so the train step is the
plain tf.function of dcgan_tf.training. `mirrored` replicates the networks on every local GPU
(`tf.distribute.MirroredStrategy`; logical CPU devices in tests), `multi_worker` across the machines of the
standard `TF_CONFIG` environment variable (`tf.distribute.MultiWorkerMirroredStrategy`).

Under a strategy one step computes what one device computes on the whole `--batch_size` batch:

- each of the N replicas gets batch_size / N images of the global batch (`distribute_dataset`);
- every random draw of the step (z, label-smoothing targets, instance noise) is drawn once for the global
  batch from the run's seeded generator and each replica keeps its rows (`GlobalBatchGenerator`);
- each replica divides its mean losses by N and the optimisers sum the replicas' gradients (training.py);
- batch norm normalises with the statistics of the global batch (`synchronize_batch_norm`), so its moving
  statistics are those of one device too, to float32 rounding: several replicas compute E[x^2] - E[x]^2 in
  float32, one device uses the fused kernel;
- with --d_steps, each replica's share holds its rows of every D update's batch (`distribute_dataset`);
- replicas agree through all-reduces wherever one device decides alone: whether an update is finite
  (--nan_policy skip_batch, `all_replicas_true`, `apply_or_restore`), whether float16 gradients overflowed
  (`agree_on_overflow`), and, across workers, after every step whether to stop: a SIGTERM or Ctrl-C on any worker,
  or --max_minutes passed on the chief (`agree_to_stop`).
  The EMA generator and spectral-norm vectors need none: every replica updates its copy from identical values.
- the step's losses, D outputs and histograms stay per replica until the training loop logs them
  (`gather_metrics`); only whether the step was finite (and, across workers, whether to stop) is agreed every
  step.

One strategy per kind and process (`create_strategy`): every new MirroredStrategy starts its collective keys
at the same numbers, and TensorFlow's collective runtime remembers each key's tensor shape for the life of
the process, so a second strategy's first all-reduce of another shape aborts with "Shape mismatch in the
collective instance 100".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from dcgan_tf.checkpoint import create_manager
from dcgan_tf.errors import DcganError, FlagError

_STRATEGIES: dict[str, tf.distribute.Strategy] = {}


def create_strategy(name: str) -> tf.distribute.Strategy | None:
    """The strategy of `--strategy name`, one per process; None for `default`.

    Create it before any other TensorFlow op: MultiWorkerMirroredStrategy configures the runtime's collectives.
    """
    if name == "default":
        return None
    if name not in _STRATEGIES:
        if name == "mirrored":  # every local GPU; without GPUs every logical CPU device (one, unless configured)
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            _STRATEGIES[name] = tf.distribute.MirroredStrategy([d.name for d in devices])
        elif name == "multi_worker":
            check_tf_config()
            _STRATEGIES[name] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            raise FlagError("strategy", f"must be one of default, mirrored, multi_worker, got {name!r}")
    return _STRATEGIES[name]


def check_tf_config() -> dict:
    """The parsed TF_CONFIG of --strategy multi_worker; FlagError when it is missing or malformed."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise FlagError("strategy", "multi_worker needs the TF_CONFIG environment variable (the cluster's workers "
                                    "and this task's index); see 'Scaling out' in README.md")
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        ok = isinstance(workers, list) and task["type"] in ("worker", "chief") and int(task["index"]) >= 0
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise DcganError('TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                         f'"task": {{"type": "worker", "index": 0}}}}, got {raw!r}')
    return config


def num_replicas(strategy: tf.distribute.Strategy | None) -> int:
    return strategy.num_replicas_in_sync if strategy is not None else 1


def scope(strategy: tf.distribute.Strategy | None):
    """`strategy.scope()`, or a context that does nothing without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def check_batch_size(batch_size: int, strategy: tf.distribute.Strategy | None, name: str) -> None:
    """FlagError unless the global batch divides evenly among the replicas."""
    n = num_replicas(strategy)
    if batch_size % n:
        raise FlagError("batch_size", f"is the global batch and must divide evenly among the {n} replicas of "
                                      f"--strategy {name}, got {batch_size}")


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether `strategy` spans several processes (--strategy multi_worker), which must agree on when to stop."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run's files: the `chief` task, or worker 0 when there is none."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def synchronize_batch_norm(strategy: tf.distribute.Strategy | None, *models) -> None:
    """With several replicas, batch norm in training all-reduces its statistics (Keras `synchronized=True`).

    Set on the built networks, so model.py stays free of tf.distribute; the variables are the same either way.
    """
    if num_replicas(strategy) == 1:
        return
    stack = list(models)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
        stack.extend(getattr(layer, "layers", []))


class GlobalBatchGenerator:
    """Stands in for the run's tf.random.Generator inside a replica: draws as one device would for the whole
    global batch (once per worker, through `merge_call`) and returns this replica's rows.

    A shape's first dimension is the replica's batch (every per-example draw of the train step is batch-first);
    scalars are drawn once and shared. The generator must be created outside the strategy's scope: then it is
    an ordinary variable that checkpoints identically under every strategy, and no replica-dependent key is
    folded into its stream.
    """

    def __init__(self, rng: tf.random.Generator):
        self.rng = rng

    def uniform(self, shape, minval=0.0, maxval=None, dtype=tf.float32):
        return self._draw(lambda s: self.rng.uniform(s, minval, maxval, dtype=dtype), shape)

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32):
        return self._draw(lambda s: self.rng.normal(s, mean, stddev, dtype=dtype), shape)

    def _draw(self, draw, shape):
        ctx = tf.distribute.get_replica_context()
        if ctx is None or not tf.distribute.has_strategy():  # cross-replica or no strategy: draw as asked
            return draw(shape)
        shape = tf.convert_to_tensor(shape, tf.int32)
        if shape.shape[0] == 0:  # a scalar, e.g. the instance-noise stddev: one value for every replica
            return ctx.merge_call(lambda _: draw([]))
        local = shape[0]
        global_shape = tf.concat([[local * ctx.num_replicas_in_sync], shape[1:]], 0)
        drawn = ctx.merge_call(lambda strategy, s: draw(strategy.experimental_local_results(s)[0]),
                               args=(global_shape,))
        start = ctx.replica_id_in_sync_group * local
        return tf.reshape(drawn[start:start + local], shape)  # reshape: static shape of the request


def _in_replica_of_strategy() -> bool:
    return tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context()


def all_replicas_true(flag):
    """Inside a strategy's replica: whether `flag` (a bool tensor) is true on every replica, one all-reduce, so
    all replicas take the same branch; the flag itself elsewhere."""
    if not _in_replica_of_strategy():
        return flag
    failed = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(flag), tf.float32))
    return tf.equal(failed, 0.0)


def agree_on_overflow(grads):
    """Every gradient NaN on every replica when any replica's gradients are not finite; `grads` elsewhere.

    Keras' LossScaleOptimizer decides to skip (and lower the scale) from the first replica's gradients before
    they are summed, so an overflow on another replica alone would reach the weights.
    """
    if not _in_replica_of_strategy():
        return grads
    finite = all_replicas_true(tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
    return [tf.where(finite, g, tf.fill(tf.shape(g), tf.constant(float("nan"), g.dtype))) for g in grads]


def apply_or_restore(ok, update, grads, variables, saved, counter: tf.Variable) -> None:
    """`update(grads)` when `ok`, else `saved` is assigned back to `variables` and `counter` counts one skip.

    `ok` must be the same on every replica (`all_replicas_true`). Under a strategy the branch is taken in
    cross-replica context, once per worker, as Keras' LossScaleOptimizer does: a cond inside a replica cannot
    hold the optimiser's merge_call. `variables` are equal on every replica (synchronised batch-norm
    statistics), so the first local replica's saved values restore them all.
    """
    def branch(ok, grads, saved, first=lambda v: v, run=lambda fn, args: fn(*args)):
        def apply_update():
            run(update, (grads,))
            return tf.constant(0, tf.int64)

        def restore():
            for var, value in zip(variables, saved):
                var.assign(first(value))
            return tf.constant(1, tf.int64)

        counter.assign_add(tf.cond(first(ok), apply_update, restore))

    if not _in_replica_of_strategy():
        branch(ok, grads, saved)
        return

    def cross_replica(strategy, ok, grads, saved):
        def first(value):
            return strategy.experimental_local_results(value)[0]

        def run(fn, args):
            strategy.extended.call_for_each_replica(fn, args=args)

        branch(ok, grads, saved, first, run)

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(ok, grads, saved))


def distribute_dataset(strategy: tf.distribute.Strategy | None, dataset: tf.data.Dataset, d_steps: int = 1):
    """Splits each global batch of `dataset` among the replicas; without a strategy the dataset itself, prefetched
    to the GPU when there is one (it must be the pipeline's last transformation).

    Every worker builds the same seeded pipeline, so sharding by DATA (each worker keeps its replicas' part of
    every global batch) needs no file-level split and works for in-memory and streamed datasets alike. With
    `d_steps` > 1 a global batch holds d_steps batches, one per D update; they are interleaved first, so each
    replica's share holds its rows of every one of them in order (what the train step slices per D update).
    """
    if strategy is None:  # a GPU gets its next batches copied while it trains (a strategy does this itself)
        gpus = tf.config.list_logical_devices("GPU")
        return dataset.apply(tf.data.experimental.prefetch_to_device(gpus[0].name, 2)) if gpus else dataset
    if d_steps > 1:
        replicas = strategy.num_replicas_in_sync
        dataset = dataset.map(lambda *parts: tuple(_replica_major(x, d_steps, replicas) for x in parts))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def _replica_major(x, d_steps: int, replicas: int):
    """[d_steps * B, ...] (D update major) -> [replicas * d_steps * B / replicas, ...] (replica major)."""
    shape = tf.shape(x)
    split = tf.concat([[d_steps, replicas, shape[0] // (d_steps * replicas)], shape[1:]], 0)  # no -1: y may be [n, 0]
    y = tf.transpose(tf.reshape(x, split), [1, 0, *range(2, x.shape.rank + 2)])  # [N, d_steps, B / N, ...]
    return tf.ensure_shape(tf.reshape(y, shape), x.shape)


def distribute_train_step(strategy: tf.distribute.Strategy | None, train_step):
    """Runs the body of `train_step` (a tf.function from make_train_step) on every replica; itself without a
    strategy.

    The returned tf.function takes a distributed batch and returns the dict of `train_step` with `finite` agreed
    by every replica (one all-reduce, every step) and every other value still per replica: reducing them is
    left to `gather_metrics`, which the training loop calls only on the steps it logs.
    """
    if strategy is None:
        return train_step
    body = train_step.python_function

    @tf.function
    def distributed_train_step(real_images, labels):
        per_replica = strategy.run(body, args=(real_images, labels))
        return {**per_replica, "finite": _all_true(strategy, per_replica["finite"])}

    return distributed_train_step


def _all_true(strategy: tf.distribute.Strategy, flags):
    """Cross-replica: whether a per-replica bool is true on every replica."""
    failed = strategy.run(lambda v: tf.cast(tf.logical_not(v), tf.int32), args=(flags,))
    return tf.equal(strategy.reduce(tf.distribute.ReduceOp.SUM, failed, axis=None), 0)


_GATHERS: dict[int, object] = {}


def gather_metrics(strategy: tf.distribute.Strategy | None, metrics: dict) -> dict:
    """The dict of a distributed train step for the global batch, as one device returns it: floating scalars
    averaged over replicas (means of equal-sized parts: the global mean), per-example tensors (`z`, `d`, `d_`)
    gathered in batch order, booleans true only if true everywhere, other scalars (counters, equal everywhere)
    from the first local replica. `metrics` itself without a strategy.

    About eight all-reduces and three gathers: call it where the values are used, not every step. Under
    multi_worker every worker must call it at the same steps.
    """
    if strategy is None:
        return metrics
    if id(strategy) not in _GATHERS:
        def combine(value):
            if not isinstance(value, tf.distribute.DistributedValues):  # agreed already (`finite`)
                return value
            first = strategy.experimental_local_results(value)[0]
            if first.shape.rank:
                return strategy.gather(value, axis=0)
            if first.dtype.is_floating:
                return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            if first.dtype == tf.bool:
                return _all_true(strategy, value)
            return first

        _GATHERS[id(strategy)] = tf.function(lambda metrics: {k: combine(v) for k, v in metrics.items()})
    return _GATHERS[id(strategy)](metrics)


_VOTES: dict[int, object] = {}


def agree_to_stop(strategy: tf.distribute.Strategy | None, requested: bool, out_of_time: bool) -> tuple[bool, bool]:
    """Whether every worker stops after this step: (a stop was requested on any worker, --max_minutes has passed
    on the chief).

    Under --strategy multi_worker both come from one all-reduce, which every worker must join at the same step:
    a SIGTERM or Ctrl-C that reaches one worker stops them all at one step, and the chief's clock alone decides
    the deadline. In a single process the arguments themselves.
    """
    if not is_multi_worker(strategy):
        return requested, out_of_time
    if id(strategy) not in _VOTES:
        @tf.function
        def votes(value):
            per_replica = strategy.run(lambda v: v, args=(value,))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        _VOTES[id(strategy)] = votes
    vote = [float(requested), float(out_of_time and is_chief(strategy))]  # [2]: requests, chief's deadline
    agreed = _VOTES[id(strategy)](tf.constant(vote)).numpy() > 0
    return bool(agreed[0]), bool(agreed[1])


class _DiscardingManager:
    """A non-chief worker's CheckpointManager: takes part in every save (TensorFlow requires all workers to)
    into a private temporary folder, and deletes it at once."""

    def __init__(self, checkpoint: tf.train.Checkpoint, max_to_keep: int):
        self.checkpoint, self.max_to_keep = checkpoint, max_to_keep
        self.directory = tempfile.mkdtemp(prefix="dcgan_worker_ckpt_")

    def save(self, checkpoint_number=None):
        os.makedirs(self.directory, exist_ok=True)
        manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=self.max_to_keep,
                                             checkpoint_name="ckpt")
        try:
            return manager.save(checkpoint_number=checkpoint_number)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def create_worker_manager(strategy: tf.distribute.Strategy | None, checkpoint: tf.train.Checkpoint, directory: str,
                   max_to_keep: int):
    """The run's CheckpointManager on the chief; a discarding one on other workers."""
    if is_chief(strategy):
        return create_manager(checkpoint, directory, max_to_keep)
    return _DiscardingManager(checkpoint, max_to_keep)


def check_same_start(strategy: tf.distribute.Strategy | None, step: int) -> None:
    """DcganError when the workers of --strategy multi_worker resumed from different steps (a worker that cannot
    see the chief's --checkpoint_dir would otherwise silently train other weights)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    steps = strategy.gather(strategy.run(lambda: tf.constant([step], tf.int64)), axis=0).numpy()  # [replicas]
    if steps.min() != steps.max():
        raise DcganError(f"the workers resumed at different steps ({steps.min()} and {steps.max()}); every worker "
                         "must see the chief's --checkpoint_dir (a shared filesystem), or none may have one")
