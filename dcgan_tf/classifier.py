r"""A small CNN classifier for 28x28x1 labelled data (MNIST / Fashion-MNIST), used to judge generated images.

Its penultimate layer gives the features of a "domain FID" (`dcgan_tf.metrics.ClassifierFeatures`), its logits
give an Inception-Score-like classifier score and, for the conditional model, the accuracy of generated images
against the labels they were asked for.

Train one and save it (prints the test accuracy):
    python -m dcgan_tf.classifier --dataset fashion_mnist --epochs 5 \
        --classifier_out checkpoints/classifier_fashion_mnist

With --mask_augment it also learns images with holes filled from their known pixels (masks.training_mask,
masks.smooth_fill): the classifier of complete.py's label-free class choice (dcgan_tf.class_prior), saved by
default to checkpoints/classifier_<dataset>_masked:
    python -m dcgan_tf.classifier --dataset fashion_mnist --mask_augment 0.8 --epochs 30

A saved classifier is a folder holding `classifier.weights.h5` and `classifier.json` (architecture, training
settings, test accuracy and the weights' checksum).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable

if __name__ == "__main__":  # run as a program: hide TensorFlow's start-up lines before it loads (dcgan_tf.quiet)
    from dcgan_tf.quiet import hide_tensorflow_logs

    hide_tensorflow_logs(sys.argv)

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from dcgan_tf.atomic import atomic_path, write_json_atomic
from dcgan_tf.cli import define_flags, exit_with, flag_values, start
from dcgan_tf.config import ClassifierConfig
from dcgan_tf.datasets import load_idx
from dcgan_tf.errors import DcganError
from dcgan_tf.masks import smooth_fill, training_mask
from dcgan_tf.progress import track

NUM_CLASSES = 10
WEIGHTS_FILE = "classifier.weights.h5"
CONFIG_FILE = "classifier.json"

# --------------------------------------------------------------------------------------------------------------
# Model


class Classifier(keras.Model):
    """conv-pool-conv-pool-dense CNN: images [N, 28, 28, 1] in [-1, 1] -> logits [N, num_classes]."""

    def __init__(self, num_classes: int = NUM_CLASSES, filters: int = 32, feature_dim: int = 128,
                 dropout: float = 0.3, seed: int = 0, **kwargs):
        """Creates the layers; weights are made on the first call.

        Args:
          num_classes: number of logits.
          filters: channels of the first convolution; the second has twice as many.
          feature_dim: width of the penultimate dense layer (the FID features).
          dropout: dropout rate before the logits (training only).
          seed: seeds the initialisers and dropout.
        """
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.filters = filters
        self.feature_dim = feature_dim
        self.dropout_rate = dropout
        self.seed = seed
        init = lambda i: keras.initializers.GlorotUniform(seed=seed + i)
        self.conv1 = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=init(1))
        self.pool1 = keras.layers.MaxPooling2D(2)  # 28 -> 14
        self.conv2 = keras.layers.Conv2D(2 * filters, 3, padding="same", activation="relu",
                                         kernel_initializer=init(2))
        self.pool2 = keras.layers.MaxPooling2D(2)  # 14 -> 7
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(feature_dim, activation="relu", kernel_initializer=init(3))
        self.dropout = keras.layers.Dropout(dropout, seed=seed + 4)
        self.logits = keras.layers.Dense(num_classes, kernel_initializer=init(5))

    def features(self, x, training: bool = False):
        """Penultimate-layer features [N, feature_dim] of images [N, 28, 28, 1] in [-1, 1]."""
        h = self.pool1(self.conv1(x))  # [N, 14, 14, filters]
        h = self.pool2(self.conv2(h))  # [N, 7, 7, 2 * filters]
        return self.dense(self.flatten(h))

    def call(self, x, training: bool = False):
        """Logits [N, num_classes] of images [N, 28, 28, 1] in [-1, 1]."""
        return self.logits(self.dropout(self.features(x, training=training), training=training))

    def architecture(self) -> dict:
        """The constructor arguments that rebuild this model."""
        return {"num_classes": self.num_classes, "filters": self.filters, "feature_dim": self.feature_dim,
                "dropout": self.dropout_rate, "seed": self.seed}


def build_classifier(**kwargs) -> Classifier:
    """A Classifier (kwargs as in its constructor) with its weights created."""
    model = Classifier(**kwargs)
    model(np.zeros((1, 28, 28, 1), np.float32), training=False)
    return model


def to_model_range(images: np.ndarray) -> np.ndarray:
    """uint8 images in [0, 255] -> float32 in [-1, 1]; float images are returned as float32 unchanged."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    return images.astype(np.float32, copy=False)


def predict_logits(model: keras.Model, images: np.ndarray, *, batch_size: int = 500) -> np.ndarray:
    """Logits [N, num_classes] (float32) of images [N, 28, 28, 1], in batches, in inference mode."""
    images = to_model_range(images)
    return np.concatenate([model(images[i:i + batch_size], training=False).numpy()
                           for i in range(0, images.shape[0], batch_size)], axis=0)


# --------------------------------------------------------------------------------------------------------------
# Training


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy of int labels [N] against logits [N, K]; a scalar."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def make_classifier_step(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> Callable:
    """A compiled step (images [n, 28, 28, 1], labels [n]) -> {"loss", "accuracy"} scalar tensors."""

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32), tf.TensorSpec([None], tf.int64)])
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = cross_entropy(labels, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=1), labels), tf.float32)
        return {"loss": loss, "accuracy": tf.reduce_mean(correct)}

    return train_step


def _check_labelled(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = to_model_range(images)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise ValueError(f"need images of shape [N, 28, 28, 1], got {images.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def mask_some(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """images [n, H, W, C] with about `fraction` of them masked by masks.training_mask and their holes filled by
    masks.smooth_fill: what the class prior shows the classifier (dcgan_tf.class_prior)."""
    chosen = np.flatnonzero(rng.random(len(images)) < fraction)
    if not len(chosen):
        return images
    h, w = images.shape[1:3]
    masks = np.stack([training_mask(h, w, rng) for _ in chosen])
    out = images.copy()
    out[chosen] = smooth_fill(images[chosen], masks)
    return out


def train_classifier(images: np.ndarray, labels: np.ndarray, *, epochs: int = 5, batch_size: int = 128,
                     seed: int = 0, learning_rate: float = 1e-3, model: Classifier | None = None,
                     on_epoch_end: Callable[[int, dict], None] | None = None, show_progress: bool = False,
                     mask_augment: float = 0.0, **model_kwargs) -> Classifier:
    """Trains a classifier with Adam on softmax cross-entropy.

    Args:
      images: [N, 28, 28, 1], float32 in [-1, 1] or uint8 in [0, 255].
      labels: int class ids [N].
      epochs: passes over the data; each visits every image once in a seeded random order (the last batch of
        an epoch may be smaller).
      batch_size: images per step.
      seed: seeds the initial weights, dropout and the shuffling.
      learning_rate: Adam's learning rate.
      model: a classifier to keep training; None builds a new one from model_kwargs and seed.
      on_epoch_end: called as on_epoch_end(epoch, {"loss": ..., "accuracy": ..., "seconds": ...}) with the
        epoch's mean training metrics.
      show_progress: draw a progress bar over each epoch's images on stdout.
      mask_augment: fraction of the training images shown with a random hole, smoothly filled (mask_some), so
        that the classifier also recognises the known pixels of an image to complete (the class prior).
      **model_kwargs: Classifier constructor arguments (filters, feature_dim, dropout, num_classes).

    Returns:
      The trained model.
    """
    images, labels = _check_labelled(images, labels)
    if model is None:
        model = build_classifier(seed=seed, **model_kwargs)
    train_step = make_classifier_step(model, keras.optimizers.Adam(learning_rate))
    rng = np.random.default_rng(seed)
    num_images = images.shape[0]
    for epoch in range(epochs):
        start = time.time()
        order = rng.permutation(images.shape[0])
        sums = {"loss": 0.0, "accuracy": 0.0}
        starts = range(0, len(order), batch_size)
        if show_progress:
            starts = track(starts, num_images, prefix=f"epoch {epoch + 1}/{epochs} ",
                           size=lambda i: min(batch_size, num_images - i))
        for i in starts:
            idx = order[i:i + batch_size]
            batch = mask_some(images[idx], mask_augment, rng) if mask_augment else images[idx]
            metrics = train_step(batch, labels[idx])
            for k in sums:
                sums[k] += float(metrics[k]) * len(idx)
        if on_epoch_end is not None:
            epoch_metrics = {k: v / len(order) for k, v in sums.items()}
            on_epoch_end(epoch, {**epoch_metrics, "seconds": time.time() - start})
    return model


# --------------------------------------------------------------------------------------------------------------
# Scores


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def scores_from_logits(logits: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    """Classifier score (and accuracy) from logits [N, K].

    classifier_score = exp(E_x KL(p(y|x) || p(y))) with p(y) the mean of p(y|x) over the set: K for confident
    predictions spread evenly over K classes, 1 when every image gets the same prediction.

    Args:
      logits: [N, K].
      labels: optional int class ids [N] the images should show (e.g. the labels a conditional generator was
        given); adds "accuracy".

    Returns:
      {"classifier_score": float, "accuracy": float (only with labels)}.
    """
    log_p = _log_softmax(np.asarray(logits, dtype=np.float64))  # [N, K]
    log_p_y = np.log(np.exp(log_p).mean(axis=0))  # [K]
    kl = (np.exp(log_p) * (log_p - log_p_y)).sum(axis=1)  # [N]
    scores = {"classifier_score": float(np.exp(kl.mean()))}
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != log_p.shape[0]:
            raise ValueError(f"{log_p.shape[0]} images but {labels.shape[0]} labels")
        scores["accuracy"] = float((log_p.argmax(axis=1) == labels).mean())
    return scores


def classifier_scores(model: keras.Model, images: np.ndarray, labels: np.ndarray | None = None, *,
                      batch_size: int = 500) -> dict[str, float]:
    """Classifier score of images [N, 28, 28, 1] in [-1, 1], and their accuracy against labels when given.

    See `scores_from_logits` for the definitions.
    """
    return scores_from_logits(predict_logits(model, images, batch_size=batch_size), labels)


# --------------------------------------------------------------------------------------------------------------
# Save / load


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_classifier(model: Classifier, path: str, metadata: dict | None = None) -> None:
    """Saves the weights and architecture into the folder path, each file written atomically.

    Args:
      model: a built Classifier.
      path: the folder (created when needed).
      metadata: extra JSON-able facts to record (dataset, epochs, test accuracy, ...).
    """
    weights_path = os.path.join(path, WEIGHTS_FILE)
    with atomic_path(weights_path) as tmp:  # tmp<pid>.<WEIGHTS_FILE>: Keras insists on the .weights.h5 suffix
        model.save_weights(tmp)
    # The checksum lets load_classifier notice a weights file and JSON from two different saves.
    record = {"architecture": model.architecture(), "weights_sha256": _sha256(weights_path),
              "metadata": metadata or {}}
    write_json_atomic(os.path.join(path, CONFIG_FILE), record)


def load_classifier(path: str) -> Classifier:
    """Loads a classifier saved by `save_classifier` from the folder path.

    Raises:
      DcganError: naming the folder when its files are missing or do not belong together.
    """
    weights_path = os.path.join(path, WEIGHTS_FILE)
    config_path = os.path.join(path, CONFIG_FILE)
    if not (os.path.isfile(weights_path) and os.path.isfile(config_path)):
        raise DcganError(f"{path}: no saved classifier ({WEIGHTS_FILE} and {CONFIG_FILE}); train one with "
                         f"`python -m dcgan_tf.classifier --classifier_out {path}`")
    with open(config_path) as f:
        record = json.load(f)
    if record.get("weights_sha256") != _sha256(weights_path):
        raise DcganError(f"{path}: {WEIGHTS_FILE} does not match {CONFIG_FILE} (an interrupted save?); "
                         "train the classifier again")
    model = build_classifier(**record["architecture"])
    model.load_weights(weights_path)
    return model


# --------------------------------------------------------------------------------------------------------------
# CLI


def masked_test_accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Accuracy on the images with every one masked by masks.training_mask and filled (mask_some, seeded)."""
    return classifier_scores(model, mask_some(images, 1.0, np.random.default_rng(seed)), labels)["accuracy"]


def train_and_save(dataset: str, data_dir: str, *, epochs: int, batch_size: int, seed: int, out: str,
                   mask_augment: float = 0.0, log: Callable[[str], None] = print) -> dict[str, float]:
    """Trains on the train split, reports test accuracy (also on masked test images with mask_augment), saves
    to out; returns the test scores."""

    train_images, train_labels = load_idx(dataset, data_dir, "train")
    test_images, test_labels = load_idx(dataset, data_dir, "test")
    log(f"{dataset}: {len(train_labels)} train / {len(test_labels)} test images")

    def log_epoch(epoch, m):
        log(f"epoch {epoch + 1}/{epochs}: loss {m['loss']:.4f}, train accuracy {m['accuracy']:.4f}, "
            f"{m['seconds']:.1f}s")

    model = train_classifier(train_images, train_labels, epochs=epochs, batch_size=batch_size, seed=seed,
                             on_epoch_end=log_epoch, show_progress=True, mask_augment=mask_augment)
    test_images = to_model_range(test_images)
    scores = classifier_scores(model, test_images, test_labels)
    log(f"test accuracy {scores['accuracy']:.4f}, test classifier score {scores['classifier_score']:.3f}")
    metadata = {"dataset": dataset, "epochs": epochs, "batch_size": batch_size, "seed": seed,
                "mask_augment": mask_augment, "test_accuracy": scores["accuracy"]}
    if mask_augment:
        scores["masked_accuracy"] = metadata["masked_test_accuracy"] = masked_test_accuracy(
            model, test_images, test_labels)
        log(f"test accuracy with a random hole, filled: {scores['masked_accuracy']:.4f}")
    save_classifier(model, out, metadata)
    log(f"saved to {out}")
    return scores


def define_program_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The program's flags, one per ClassifierConfig field. Only the program defines them, so importing this
    module adds no flags to main.py's or complete.py's (which share some names)."""
    define_flags(ClassifierConfig, flag_values=flag_values)


def config_from_flags(values: flags.FlagValues = flags.FLAGS) -> ClassifierConfig:
    """One validated ClassifierConfig from the flags."""
    return ClassifierConfig(**flag_values(ClassifierConfig, flag_values=values)[0]).validate()


def run(_argv: list[str]) -> int:
    """Trains and saves the classifier the flags describe."""
    cfg = config_from_flags()
    train_and_save(cfg.dataset, cfg.data_dir, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                   out=cfg.out, mask_augment=cfg.mask_augment)
    return 0


def main(argv):
    """absl's main: `run`, with a user error (a leftover word too) as one line and exit code 2."""
    exit_with(run, argv)


if __name__ == "__main__":
    define_program_flags()
    start(main, hide_logs=False)  # TensorFlow's lines were hidden before it loaded, above
