"""The training loop: one compiled train step, and an orchestrator that owns checkpoints, samples and logs.

`train(cfg)` is the whole of `main.py --train`: it loads the data, writes FLAGS.json before step 0, resumes
from the run's latest checkpoint, and runs epochs of `train_step`, which performs `--d_steps` D updates (one by
default), each on its own real batch, and then `--g_steps` G updates with the last D update's z (carpedm20's
double generator update by default), returning a dict of tensors. The D update, the G update and the
skip-on-NaN machinery (`NanGuard`) are named helpers that `make_train_step` composes.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import NamedTuple

import keras
import tensorflow as tf
from absl import logging

from dcgan_tf import __version__, distribute, hardware
from dcgan_tf.atomic import write_json_atomic
from dcgan_tf.checkpoint import TrainState, create_checkpoint, restore_latest, save_checkpoint
from dcgan_tf.config import RunPaths, TrainConfig, check_against_saved, read_saved_flags
from dcgan_tf.data import load_train_data
from dcgan_tf.ema import GeneratorEma, create_ema
from dcgan_tf.errors import DcganError
from dcgan_tf.images import make_grid, save_image_grid
from dcgan_tf.latent import class_labels, sample_z
from dcgan_tf.losses import discriminator_loss, discriminator_probability, generator_loss, gradient_penalty, interpolate
from dcgan_tf.model import apply_discriminator, apply_generator, mixed_precision_policy, models_from_config
from dcgan_tf.optimizers import FusedAdam
from dcgan_tf.progress import ProgressBar

SCALARS = ("d_loss", "d_loss_real", "d_loss_fake", "g_loss", "d_real", "d_fake")
HISTOGRAMS = ("z", "d", "d_")
# TensorBoard tags, grouped for monitoring: the group, then carpedm20's name (D's outputs as D/real, D/fake).
TAGS = {"d_loss": "loss/d_loss", "d_loss_real": "loss/d_loss_real", "d_loss_fake": "loss/d_loss_fake",
        "g_loss": "loss/g_loss", "gradient_penalty": "loss/gradient_penalty", "d_real": "D/real", "d_fake": "D/fake",
        "learning_rate_d": "lr/d", "learning_rate_g": "lr/g", "nan_skipped": "health/nan_skipped",
        "z": "hist/z", "d": "hist/d", "d_": "hist/d_"}
SAMPLE_TAG = "samples/G"  # the training grid, one image per sample step
EVAL_GROUP = "eval/"  # --eval_freq metrics: eval/fid, eval/kid, ...


@dataclasses.dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    step: int
    epoch: int
    metrics: dict[str, float]
    images_per_second: float
    paths: RunPaths
    interrupted: bool = False
    out_of_time: bool = False  # stopped by --max_minutes (with a checkpoint; re-running continues)


def create_optimizers(cfg: TrainConfig, loss_scaling: bool = False):
    """Adam (fused, see optimizers.py) for G and D with their own learning rates and beta1.

    Returns (g_optimizer, d_optimizer). With `loss_scaling` (float16 mixed precision) each is wrapped in its
    own LossScaleOptimizer.
    """
    g_opt = FusedAdam(cfg.learning_rate_g, beta_1=cfg.beta1, name="g_adam")
    d_opt = FusedAdam(cfg.learning_rate_d, beta_1=cfg.beta1, name="d_adam")
    if loss_scaling:
        g_opt = keras.optimizers.LossScaleOptimizer(g_opt, name="g_loss_scale")
        d_opt = keras.optimizers.LossScaleOptimizer(d_opt, name="d_loss_scale")
    return g_opt, d_opt


def scaled_loss(opt, loss):
    """The loss a replica differentiates: its share of the global mean (apply_gradients sums the replicas'
    gradients), scaled up under float16 (apply_gradients unscales). Call it inside the tape."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = loss / replicas
    return opt.scale_loss(loss) if isinstance(opt, keras.optimizers.LossScaleOptimizer) else loss


class NanGuard:
    """Applies updates; under --nan_policy skip_batch (`active`) one whose loss or gradients are not finite is not
    applied, the batch-norm statistics its forward pass moved are restored, and `skipped` counts it. Under a
    strategy every replica takes the same decision (one all-reduced flag)."""

    def __init__(self, G, D, skipped: tf.Variable, active: bool):
        self.statistics = G.non_trainable_variables + D.non_trainable_variables  # BN moving means and variances
        self.skipped, self.active = skipped, active

    def snapshot(self) -> list:
        """Values of the BN statistics before a forward pass, to undo it if the update is skipped."""
        return [tf.identity(v) for v in self.statistics] if self.active else []

    def apply(self, opt, tape, objective, loss, model, before: list) -> None:
        """Differentiates `objective` for `model`'s weights and applies the update (see the class)."""
        variables = model.trainable_variables
        grads = tape.gradient(objective, variables)
        loss_scaled = isinstance(opt, keras.optimizers.LossScaleOptimizer)
        if loss_scaled:  # it checks each replica's own gradients: make an overflow on one an overflow on all
            grads = distribute.agree_on_overflow(grads)
        if not self.active:
            opt.apply_gradients(zip(grads, variables))
            return
        ok = tf.math.is_finite(loss)
        if not loss_scaled:  # that one skips bad gradients itself
            ok = ok & tf.math.is_finite(tf.linalg.global_norm(grads))
        ok = distribute.all_replicas_true(ok)  # one replica's NaN skips the update on every replica
        distribute.apply_or_restore(ok, lambda g: opt.apply_gradients(zip(g, variables)), grads, self.statistics,
                                    before, self.skipped)


class DUpdate(NamedTuple):
    """What one D (critic) update leaves for the G updates and the step's metrics."""

    z: tf.Tensor  # [B, z_dim], reused by the G updates (carpedm20)
    d_loss: tf.Tensor
    d_loss_real: tf.Tensor
    d_loss_fake: tf.Tensor
    gradient_penalty: tf.Tensor  # 0 unless --loss wgan-gp
    real_logits: tf.Tensor
    fake_logits: tf.Tensor


def make_d_update(G, D, d_opt, rng: tf.random.Generator, cfg: TrainConfig, guard: NanGuard):
    """(real_images [B, H, W, C], labels [B, Y], B) -> DUpdate: one D update on one real batch and a fresh z,
    with instance noise, one-sided label smoothing and the WGAN-GP penalty as configured."""
    def d_update(real_images, labels, batch: int) -> DUpdate:
        z = sample_z(rng, batch, cfg.z_dim, cfg.z_dist)
        if cfg.instance_noise > 0:  # Gaussian instance noise, stddev ~ U(0, S) per batch
            stddev = rng.uniform([], 0.0, cfg.instance_noise)
            real_images = real_images + stddev * rng.normal(tf.shape(real_images))
        real_targets = None
        if cfg.label_smoothing > 0:  # one-sided: real targets ~ U(L, 1)
            real_targets = rng.uniform([batch, 1], cfg.label_smoothing, 1.0)
        before = guard.snapshot()
        gp = tf.constant(0.0)
        with tf.GradientTape() as tape:
            fake_images = apply_generator(G, z, labels, training=True)
            real_logits = apply_discriminator(D, real_images, labels, training=True)
            fake_logits = apply_discriminator(D, fake_images, labels, training=True)
            d_loss, d_loss_real, d_loss_fake = discriminator_loss(real_logits, fake_logits, real_targets, cfg.loss)
            if cfg.loss == "wgan-gp":  # the penalty on D's input gradient at x_hat, differentiated again
                x_hat = interpolate(real_images, fake_images, rng.uniform([batch], 0.0, 1.0))
                with tf.GradientTape() as inner:
                    inner.watch(x_hat)
                    hat_logits = apply_discriminator(D, x_hat, labels, training=True)
                gp = gradient_penalty(inner.gradient(hat_logits, x_hat))
                d_loss = d_loss + cfg.gp_weight * gp
            d_objective = scaled_loss(d_opt, d_loss)
        guard.apply(d_opt, tape, d_objective, d_loss, D, before)
        return DUpdate(z, d_loss, d_loss_real, d_loss_fake, gp, real_logits, fake_logits)

    return d_update


def make_g_update(G, D, g_opt, cfg: TrainConfig, guard: NanGuard):
    """(z [B, z_dim], labels [B, Y]) -> g_loss: one G update against D."""
    def g_update(z, labels) -> tf.Tensor:
        before = guard.snapshot()
        with tf.GradientTape() as tape:
            fake_images = apply_generator(G, z, labels, training=True)
            g_loss = generator_loss(apply_discriminator(D, fake_images, labels, training=True), cfg.loss)
            g_objective = scaled_loss(g_opt, g_loss)
        guard.apply(g_opt, tape, g_objective, g_loss, G, before)
        return g_loss

    return g_update


def step_metrics(d: DUpdate, g_loss, G, D, cfg: TrainConfig, guard: NanGuard) -> dict[str, tf.Tensor]:
    """The train step's dict: losses, mean D outputs, histograms, `finite`, `nan_skipped` (see make_train_step)."""
    d_real = discriminator_probability(d.real_logits, cfg.loss)
    d_fake = discriminator_probability(d.fake_logits, cfg.loss)
    finite = tf.math.is_finite(d.d_loss) & tf.math.is_finite(g_loss)
    if not guard.active:  # a blown-up weight must stop the run even when this step's losses look fine
        weights = G.trainable_variables + D.trainable_variables
        finite = finite & tf.reduce_all([tf.reduce_all(tf.math.is_finite(w)) for w in weights])
    metrics = {"d_loss": d.d_loss, "d_loss_real": d.d_loss_real, "d_loss_fake": d.d_loss_fake, "g_loss": g_loss,
               "d_real": tf.reduce_mean(d_real), "d_fake": tf.reduce_mean(d_fake), "z": d.z, "d": d_real,
               "d_": d_fake, "finite": finite, "nan_skipped": guard.skipped.read_value()}
    if cfg.loss == "wgan-gp":
        metrics["gradient_penalty"] = d.gradient_penalty
    return metrics


def make_train_step(G, D, g_opt, d_opt, rng: tf.random.Generator, cfg: TrainConfig, *,
                    nan_skipped: tf.Variable | None = None, ema: GeneratorEma | None = None):
    """Returns a tf.function (real_images [S,H,W,C], labels [S,Y]) -> dict of scalar (and histogram) tensors.

    S = cfg.images_per_step: --d_steps D updates on batches of --batch_size, then --g_steps G updates, then
    the EMA update when `ema` is given. The dict holds the losses (of the last D update), mean D outputs, `z`,
    `d`, `d_` for histograms, `gradient_penalty` under wgan-gp, and `finite` (False when a loss or, under
    --nan_policy stop, a weight is not finite). Under --nan_policy skip_batch an update whose loss or
    gradients are not finite is not applied and `nan_skipped` (returned too) counts it.
    """
    if nan_skipped is None:
        nan_skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="nan_skipped")
    for opt, model in ((g_opt, G), (d_opt, D)):
        if not opt.built and model.built:  # slots made now, or the first call traces twice (to create them)
            opt.build(model.trainable_variables)
    guard = NanGuard(G, D, nan_skipped, active=cfg.nan_policy == "skip_batch")
    d_update = make_d_update(G, D, d_opt, rng, cfg, guard)
    g_update = make_g_update(G, D, g_opt, cfg, guard)

    @tf.function(jit_compile=cfg.jit_compile)
    def train_step(real_images, labels):
        """real_images [d_steps * B, H, W, C], labels [d_steps * B, Y]: d_steps D updates, then g_steps G ones."""
        batch = real_images.shape[0] // cfg.d_steps  # --batch_size, or a replica's share of it
        for k in range(cfg.d_steps):  # each critic step sees its own real images and a fresh z
            chunk = slice(k * batch, (k + 1) * batch)
            d = d_update(real_images[chunk], labels[chunk], batch)
        labels = labels[chunk]
        for _ in range(cfg.g_steps):  # with the last D update's z, as carpedm20
            g_loss = g_update(d.z, labels)
        if ema is not None:
            ema.update()
        return step_metrics(d, g_loss, G, D, cfg, guard)

    return train_step


def resolve_jit_compile(cfg: TrainConfig, gpus: int | None = None) -> TrainConfig:
    """`cfg` with --jit_compile auto (None) decided: XLA on with a GPU under --strategy default, off on CPU,
    where it compiles for ~30 s and runs transposed convolutions slower (docs/speed.md); under a strategy it
    cannot compile the step (see TrainConfig.validate).

    Args:
      gpus: the number of GPUs; None: TensorFlow's list of physical GPUs.
    """
    if cfg.jit_compile is not None:
        return cfg
    if cfg.strategy != "default":
        return dataclasses.replace(cfg, jit_compile=False)
    if gpus is None:
        gpus = len(tf.config.list_physical_devices("GPU"))
    return dataclasses.replace(cfg, jit_compile=bool(gpus))


def resolve_mixed_precision(cfg: TrainConfig, saved: dict | None,
                            precision: hardware.Precision | None = None) -> tuple[TrainConfig, hardware.Precision]:
    """`cfg` with --mixed_precision auto (None) decided, and the Precision that runs; logs the choice in one line.

    A resumed run (`saved`: its FLAGS.json) keeps the precision it was trained with unless the command gives
    --mixed_precision. Mixed precision forced on hardware without fast kernels for it runs after a warning.

    Args:
      precision: the machine's answer (hardware.resolve_precision); default: asked now.
    """
    kept = cfg.mixed_precision is None and saved is not None and isinstance(saved.get("mixed_precision"), bool)
    requested = saved["mixed_precision"] if kept else cfg.mixed_precision
    if precision is None:
        precision = hardware.resolve_precision(requested)
    if kept:
        precision = dataclasses.replace(precision, reason="the precision this run was trained with (--mixed_precision "
                                                          "changes it)")
    warning = hardware.slow_precision_warning(precision)
    if warning:
        logging.warning("%s", warning)
    logging.info("compute: %s (%s); %s", precision.name, precision.reason, hardware.onednn_status())
    return dataclasses.replace(cfg, mixed_precision=precision.mixed), precision


def with_xla_fallback(step, make_plain_step):
    """`step` (compiled with XLA), or, if its first call fails to compile, `make_plain_step()` after a warning.

    For --jit_compile auto: XLA is tried where it usually helps (a GPU), and a step XLA cannot compile still
    trains. Compilation errors come before any variable is updated, so the plain step starts from the same state.
    Errors after the first call, and errors the plain step raises too, propagate.
    """
    current, tried = step, False

    def call(*args):
        nonlocal current, tried
        if tried:
            return current(*args)
        try:
            out = current(*args)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.InternalError) as e:
            reason = (e.message or type(e).__name__).strip().splitlines()[0][:200]
            logging.warning("XLA could not compile the train step (%s); continuing without XLA (--nojit_compile "
                            "skips the attempt)", reason)
            current = make_plain_step()
            out = current(*args)
        tried = True
        return out

    return call


def decayed_learning_rate(base: float, cfg: TrainConfig, epoch: int) -> float:
    """Step decay: base * lr_decay ** (epoch // lr_decay_every)."""
    if cfg.lr_decay_every <= 0:
        return base
    return base * cfg.lr_decay ** (epoch // cfg.lr_decay_every)


def write_run_flags(cfg: TrainConfig, paths: RunPaths, data_facts: dict) -> None:
    """Checks this command against a saved run (architecture and data) and writes FLAGS.json before step 0."""
    saved = read_saved_flags(paths)
    if saved is not None:
        check_against_saved(cfg, saved, {"c_dim": data_facts["c_dim"], "y_dim": data_facts["y_dim"]})
    record = {**cfg.to_dict(), **data_facts, "dcgan_tf_version": __version__}
    try:
        paths.make_dirs()
        for folder in (paths.run_dir, paths.checkpoint_dir):
            write_json_atomic(os.path.join(folder, "FLAGS.json"), record)
    except OSError as e:
        where = e.filename or paths.run_dir
        raise DcganError(f"cannot write to {where} ({e.strerror or type(e).__name__}); choose writable --out_dir, "
                         "--checkpoint_dir and --sample_dir or fix permissions") from None


def save_training_grid(G, state: TrainState, paths: RunPaths, step: int, writer) -> str:
    """Writes samples/<run>/train_{step:08d}.png from the fixed z (one column per class), and the same grid as
    one TensorBoard image (`samples/G`)."""
    labels = state.sample_labels
    images = apply_generator(G, state.sample_z, labels, training=False).numpy()
    cols = labels.shape[-1] or None
    try:
        path = save_image_grid(images, os.path.join(paths.sample_dir, f"train_{step:08d}.png"), cols=cols)
    except OSError as e:
        raise DcganError(f"could not write a sample grid to {paths.sample_dir} ({e.strerror or type(e).__name__}); "
                         "the last checkpoint is intact; free space or fix permissions and re-run") from None
    with writer.as_default(step=step):
        tf.summary.image(SAMPLE_TAG, make_grid(images, cols)[None], max_outputs=1)  # [1, rows*H, cols*W, C] uint8
    return path


def create_training_evaluator(cfg: TrainConfig, c_dim: int, y_dim: int):
    """With --eval_freq: a function (G, step, writer) -> metrics that measures FID etc. and logs them."""
    if not cfg.eval_freq:
        return None
    from dcgan_tf.evaluate import TRAINING_KID_SUBSETS, create_evaluator, format_metrics

    evaluator = create_evaluator(cfg, c_dim=c_dim, y_dim=y_dim, kid_subsets=TRAINING_KID_SUBSETS)

    def evaluate(G, step: int, writer) -> dict[str, float]:
        results = evaluator(G, num_samples=cfg.eval_samples, seed=cfg.seed)
        with writer.as_default(step=step):
            for k, v in results.items():
                tf.summary.scalar(EVAL_GROUP + k, v)
        logging.info("step %d: %s", step, format_metrics(results))
        return results

    return evaluate


def write_summaries(writer, step: int, metrics: dict, learning_rates: dict) -> dict[str, float]:
    """Scalars, learning rates and histograms at `step`, under the grouped TAGS. Returns the scalars as floats,
    keyed by carpedm20's names."""
    scalars = {k: float(metrics[k]) for k in SCALARS}
    if "gradient_penalty" in metrics:
        scalars["gradient_penalty"] = float(metrics["gradient_penalty"])
    with writer.as_default(step=step):
        for k, v in {**scalars, **learning_rates, "nan_skipped": metrics["nan_skipped"]}.items():
            tf.summary.scalar(TAGS.get(k, k), v)
        for k in HISTOGRAMS:
            tf.summary.histogram(TAGS[k], metrics[k])
    return scalars


class NonFiniteError(DcganError):
    """A loss or weight became NaN/inf under --nan_policy stop; the broken state is never saved."""

    def __init__(self, step: int, metrics: dict, last_saved_step: int):
        losses = ", ".join(f"{k}={float(metrics[k]):.4g}" for k in ("d_loss", "g_loss"))
        super().__init__(f"non-finite loss or weight at step {step} ({losses}); stopped without saving, the last "
                         f"good checkpoint (step {last_saved_step}) is kept; lower --learning_rate or use "
                         "--nan_policy skip_batch")


class _OutOfTime(Exception):
    """--max_minutes has passed: checkpoint and stop as after a finished run."""


class _StopRequest:
    """Turns SIGTERM into a flag the loop checks after each step, so the run can checkpoint and exit.

    With `flag_ctrl_c` (--strategy multi_worker) Ctrl-C becomes the same flag: the worker must still join the
    step's stop agreement, or the others would wait for it in their next all-reduce. A second Ctrl-C interrupts
    at once. Without it Ctrl-C raises KeyboardInterrupt wherever the loop is.
    """

    def __init__(self, flag_ctrl_c: bool = False):
        self.requested = False
        self._signals = (signal.SIGTERM, signal.SIGINT) if flag_ctrl_c else (signal.SIGTERM,)
        self._previous = {}

    def __enter__(self):
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in self._signals}
        except ValueError:  # not in the main thread: signals keep their handlers
            pass
        return self

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}


@dataclasses.dataclass
class TrainingSetup:
    """Everything a run trains and saves, restored from its latest checkpoint when there is one."""

    G: keras.Model
    D: keras.Model
    g_opt: keras.optimizers.Optimizer
    d_opt: keras.optimizers.Optimizer
    state: TrainState
    checkpoint: tf.train.Checkpoint
    ema: GeneratorEma | None  # with --g_ema

    @property
    def output_generator(self):
        """The generator that draws samples and evaluations: the EMA one with --g_ema, else G."""
        return self.ema.model if self.ema is not None else self.G


def create_training(cfg: TrainConfig, c_dim: int, y_dim: int, paths: RunPaths,
                    strategy: tf.distribute.Strategy | None = None) -> TrainingSetup:
    """Networks, optimisers, TrainState and the EMA generator, restored from the run's latest checkpoint.

    With a `strategy` the networks and optimisers are mirrored (created in its scope) and TrainState is not:
    plain variables, the same under every strategy (see distribute.GlobalBatchGenerator).
    """
    policy = mixed_precision_policy() if cfg.mixed_precision else None
    z_rng = tf.random.Generator.from_seed(cfg.seed + 1)
    state = TrainState.create(cfg.seed, sample_z(z_rng, cfg.sample_num, cfg.z_dim, cfg.z_dist),
                              class_labels(cfg.sample_num, y_dim))
    with distribute.scope(strategy):
        G, D = models_from_config(cfg, c_dim, y_dim, dtype_policy=policy)
        distribute.synchronize_batch_norm(strategy, G, D)
        g_opt, d_opt = create_optimizers(cfg, loss_scaling=policy == "mixed_float16")
        ema = create_ema(cfg, G, c_dim, y_dim)
        ckpt = create_checkpoint(G, D, g_opt, d_opt, state, extra=ema.checkpoint_items() if ema else None)
    # Outside the scope: the checkpoint's own save counter stays a plain variable (under multi_worker one made
    # in the scope is broadcast from the chief, a collective that a worker without a checkpoint never joins).
    if restore_latest(ckpt, paths.checkpoint_dir):
        logging.info("resuming %s at epoch %d, step %d", paths.run_dir, int(state.epoch), int(state.step))
    return TrainingSetup(G, D, g_opt, d_opt, state, ckpt, ema)


def train(cfg: TrainConfig) -> TrainResult:
    """Trains (or resumes) the run described by `cfg`. Returns the final step, epoch and metrics."""

    cfg = cfg.validate()
    auto_jit = cfg.jit_compile is None
    cfg = resolve_jit_compile(cfg)  # FLAGS.json records what ran
    # Data loading counts; under multi_worker the chief's deadline stops every worker (distribute.agree_to_stop).
    deadline = time.perf_counter() + 60 * cfg.max_minutes if cfg.max_minutes else None
    strategy = distribute.create_strategy(cfg.strategy)  # first: multi_worker configures TensorFlow's runtime
    distribute.check_batch_size(cfg.batch_size, strategy, cfg.strategy)
    chief = distribute.is_chief(strategy)  # only the chief writes the run's files
    paths = RunPaths.from_config(cfg)
    cfg, precision = resolve_mixed_precision(cfg, read_saved_flags(paths))  # FLAGS.json records the resolved one
    data = load_train_data(cfg, seed=cfg.seed)
    facts = {"c_dim": data.c_dim, "y_dim": data.y_dim, "num_examples": data.num_examples,
             "precision": precision.name}
    if chief:
        write_run_flags(cfg, paths, facts)
    keras.utils.set_random_seed(cfg.seed)

    training = create_training(cfg, data.c_dim, data.y_dim, paths, strategy)
    G, D, g_opt, d_opt, state = training.G, training.D, training.g_opt, training.d_opt, training.state
    sample_G = training.output_generator
    manager = distribute.create_worker_manager(strategy, training.checkpoint, paths.checkpoint_dir, cfg.max_to_keep)
    distribute.check_same_start(strategy, int(state.step.numpy()))
    step, start_epoch = int(state.step.numpy()), int(state.epoch.numpy())
    done_in_epoch = int(state.epoch_step.numpy())  # > steps_per_epoch after a larger --batch_size: epoch done

    saved_step = step  # the step of the newest complete checkpoint

    def checkpoint_now(epoch: int, in_epoch: int):
        nonlocal saved_step
        state.step.assign(step)
        state.epoch.assign(epoch)
        state.epoch_step.assign(in_epoch)
        save_checkpoint(manager, step)
        saved_step = step  # only now: a save interrupted by Ctrl-C is redone below

    evaluate = create_training_evaluator(cfg, data.c_dim, data.y_dim) if chief else None  # before step 0
    rng = state.rng if strategy is None else distribute.GlobalBatchGenerator(state.rng)
    train_step = make_train_step(G, D, g_opt, d_opt, rng, cfg, nan_skipped=state.nan_skipped, ema=training.ema)
    if auto_jit and cfg.jit_compile:
        plain = dataclasses.replace(cfg, jit_compile=False)
        train_step = with_xla_fallback(train_step, lambda: make_train_step(
            G, D, g_opt, d_opt, rng, plain, nan_skipped=state.nan_skipped, ema=training.ema))
    train_step = distribute.distribute_train_step(strategy, train_step)
    writer = tf.summary.create_file_writer(paths.run_dir) if chief else tf.summary.create_noop_writer()
    scalars: dict[str, float] = {}
    last_eval: dict[str, float] = {}  # the latest --eval_freq measurement
    images_seen, t_start = 0, time.perf_counter()
    interrupted = out_of_time = False
    epoch, in_epoch = start_epoch, done_in_epoch
    with _StopRequest(flag_ctrl_c=distribute.is_multi_worker(strategy)) as stop:
        try:
            for epoch in range(start_epoch, cfg.epoch):
                lrs = {"learning_rate_d": decayed_learning_rate(cfg.learning_rate_d, cfg, epoch),
                       "learning_rate_g": decayed_learning_rate(cfg.learning_rate_g, cfg, epoch)}
                d_opt.learning_rate, g_opt.learning_rate = lrs["learning_rate_d"], lrs["learning_rate_g"]
                bar = ProgressBar(data.steps_per_epoch, prefix=f"epoch {epoch + 1}/{cfg.epoch} ")
                epoch_t0, first = time.perf_counter(), in_epoch
                batches = data.dataset.take(max(data.steps_per_epoch - in_epoch, 0))
                for real_images, labels in distribute.distribute_dataset(strategy, batches, cfg.d_steps):
                    metrics = train_step(real_images, labels)  # under a strategy: per replica, `finite` agreed
                    if cfg.nan_policy == "stop" and not bool(metrics["finite"]):
                        raise NonFiniteError(step + 1, distribute.gather_metrics(strategy, metrics), saved_step)
                    step, in_epoch, images_seen = step + 1, in_epoch + 1, images_seen + cfg.images_per_step
                    if step % cfg.log_freq == 0 or in_epoch == data.steps_per_epoch:  # the same steps on every worker
                        scalars = write_summaries(writer, step, distribute.gather_metrics(strategy, metrics), lrs)
                        rate = (in_epoch - first) * cfg.images_per_step / max(time.perf_counter() - epoch_t0, 1e-9)
                        bar.update(in_epoch, {"img/s": rate, **scalars})
                    if chief and step % cfg.sample_freq == 0:
                        save_training_grid(sample_G, state, paths, step, writer)
                    if evaluate is not None and step % cfg.eval_freq == 0:
                        last_eval = evaluate(sample_G, step, writer)
                    if step % cfg.ckpt_freq == 0 and in_epoch < data.steps_per_epoch:
                        checkpoint_now(epoch, in_epoch)
                    # Every worker, every step: a request on any worker or the chief's deadline stops them all here
                    requested, late = distribute.agree_to_stop(
                        strategy, stop.requested, deadline is not None and time.perf_counter() >= deadline)
                    if requested:
                        raise KeyboardInterrupt
                    if late:
                        raise _OutOfTime
                checkpoint_now(epoch + 1, 0)
                in_epoch = 0  # after the save: if it is interrupted, the epoch is still recorded as full
        except _OutOfTime:
            out_of_time = True
            logging.info("--max_minutes %g reached at step %d: saving a checkpoint and stopping", cfg.max_minutes,
                         step)
            if step != saved_step:
                checkpoint_now(epoch, in_epoch)
        except KeyboardInterrupt:
            interrupted = True
            logging.warning("interrupted at step %d: saving a checkpoint before exiting", step)
            if step != saved_step:
                checkpoint_now(epoch, in_epoch)
    if chief and step and not interrupted:
        save_training_grid(sample_G, state, paths, step, writer)
    writer.flush()
    elapsed = time.perf_counter() - t_start
    return TrainResult(step=step, epoch=int(state.epoch.numpy()), metrics={**scalars, **last_eval},
                       images_per_second=images_seen / elapsed if images_seen else 0.0, paths=paths,
                       interrupted=interrupted, out_of_time=out_of_time)
