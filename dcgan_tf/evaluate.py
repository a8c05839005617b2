"""Sample quality of a generator: FID, KID and (on 28x28 labelled data) a classifier score and accuracy.

An `Evaluator` is created once per run by `create_evaluator`; it picks the feature extractor, loads the real
reference set and caches what it needs of it, so each measurement only generates images and extracts their
features. The same object serves training (`--eval_freq`, about 1,000 samples) and `--evaluate` (10,000).

* Features (`--eval_features`): `auto` uses the Fashion-MNIST/MNIST classifier of `dcgan_tf.classifier` for
  mnist and fashion_mnist at 28x28x1 (a "domain FID" that needs no external weights) and InceptionV3
  (`--fid_weights`) otherwise.
* Real reference: the 10,000 test images of an idx dataset (mnist, fashion_mnist); for image folders and TFDS
  datasets, up to 10,000 training images as `dcgan_tf.data` prepares them (crop, resize, no flips).
* Cache: the reference's mean and covariance, a seeded subsample of its features (for KID) and its classifier
  scores go to one .npz under `<--checkpoint_dir>/eval_cache`, keyed by dataset, data, image size and
  extractor, so they are computed once.

FID and KID are biased by the number of generated images: compare only figures measured with the same
`num_samples`. `real_floor` gives what real images score: the test split measured against the train split.

Example:
    evaluator = create_evaluator(cfg, c_dim=1, y_dim=10)
    metrics = evaluator(G, num_samples=1000, seed=0)  # {"fid", "kid", "kid_std", "classifier_score", "accuracy"}
    evaluate_run(cfg)  # loads the run's checkpoint, writes out/<run>/eval.json
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator

import numpy as np
import tensorflow as tf

from dcgan_tf import metrics
from dcgan_tf.atomic import write_json_atomic
from dcgan_tf.classifier import CONFIG_FILE, WEIGHTS_FILE, load_classifier, predict_logits, scores_from_logits
from dcgan_tf.config import LABELLED_DATASETS, RunPaths, TrainConfig
from dcgan_tf.data import load_train_data
from dcgan_tf.datasets import load_idx
from dcgan_tf.errors import DcganError, FlagError
from dcgan_tf.latent import class_labels, sample_z
from dcgan_tf.model import apply_generator
from dcgan_tf.progress import track
from dcgan_tf.runs import load_run

CLASSIFIER_SHAPE = (28, 28, 1)  # the only input the classifier takes
REAL_IMAGES = 10_000  # cap on the reference images taken from a training folder
KID_REAL_FEATURES = 5_000  # reference features kept (seeded subsample) for KID
KID_SUBSETS = 100  # the usual protocol; for --evaluate
TRAINING_KID_SUBSETS = 20  # during training: ~4 s instead of ~12 s per 1,000 samples on 2 busy cores
KID_SUBSET_SIZE = 1_000
INCEPTION_SIZE = 299  # the standard FID protocol's input size
CACHE_VERSION = 1  # bump when the way the reference is computed changes
EVAL_FILE = "eval.json"
_CHUNK = 1_000  # real images converted to float at a time

# --------------------------------------------------------------------------------------------------------------
# The evaluator


@dataclasses.dataclass(frozen=True)
class RealReference:
    """What the metrics need of the real reference set."""

    mu: np.ndarray  # [D] mean of the features
    sigma: np.ndarray  # [D, D] covariance of the features
    features: np.ndarray  # [K, D] seeded subsample of the features, for KID
    scores: dict[str, float]  # classifier_score (and accuracy) of the real images; {} without a classifier
    num_images: int
    source: str  # e.g. "fashion_mnist test split (held out: the run trained with --idx_split train)"


class Evaluator:
    """Measures a generator against a real reference set with one feature extractor (see `create_evaluator`)."""

    def __init__(self, extractor: metrics.FeatureExtractor, reference: RealReference, *,
                 image_shape: tuple[int, int, int], z_dim: int, z_dist: str, y_dim: int, classifier=None,
                 kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE):
        """Wraps an extractor and a reference set.

        Args:
          extractor: maps images [N, H, W, C] in [-1, 1] to features [N, D].
          reference: the real set's statistics and KID features, from the same extractor.
          image_shape: (H, W, C) of the generator's images.
          z_dim: latent size of the generator.
          z_dist: distribution the generator was trained with (`sample_z`).
          y_dim: number of classes of a conditional generator; 0 = unconditional.
          classifier: a `dcgan_tf.classifier.Classifier` for classifier_score and accuracy, or None.
          kid_subsets: number of random subset pairs KID averages over.
          kid_subset_size: images per KID subset (capped by the set sizes).
        """
        self.extractor = extractor
        self.reference = reference
        self.image_shape = tuple(image_shape)
        self.z_dim = z_dim
        self.z_dist = z_dist
        self.y_dim = y_dim
        self.classifier = classifier
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size

    @property
    def name(self) -> str:
        """The extractor's name (it identifies the features, e.g. the classifier's weights)."""
        return self.extractor.name

    def __call__(self, G, *, num_samples: int, batch_size: int = 500, seed: int = 0) -> dict[str, float]:
        """Generates num_samples images with G and measures them against the reference.

        Args:
          G: the generator; called as apply_generator(G, z, labels, training=False).
          num_samples: images to generate (>= 2); compare only figures with the same num_samples.
          batch_size: images per generator call.
          seed: seeds z and the KID subsets; the same seed and weights give the same figures.

        Returns:
          {"fid", "kid", "kid_std"}, plus "classifier_score" with classifier features and "accuracy" (against
          the requested labels, spread evenly over the classes) for a conditional generator.
        """
        return self.score_batches(self.generate(G, num_samples=num_samples, batch_size=batch_size, seed=seed),
                                  seed=seed)

    def generate(self, G, *, num_samples: int, batch_size: int = 500, seed: int = 0
                 ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Yields (images float32 [b, H, W, C], requested class ids [b] or None) in batches of batch_size."""
        if num_samples < 2 or batch_size < 1:
            raise ValueError(f"need num_samples >= 2 and batch_size >= 1, got {num_samples} and {batch_size}")
        rng = tf.random.Generator.from_seed(seed)
        ids = np.arange(num_samples) % self.y_dim if self.y_dim else None  # classes 0..y_dim-1 in turn
        onehot = class_labels(num_samples, self.y_dim)  # [N, y_dim], the same classes one-hot
        for start in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - start)
            z = sample_z(rng, n, self.z_dim, self.z_dist)
            images = apply_generator(G, z, tf.constant(onehot[start:start + n]), training=False)
            yield np.asarray(images, np.float32), None if ids is None else ids[start:start + n]

    def score_batches(self, batches: Iterable[tuple[np.ndarray, np.ndarray | None]], *, seed: int = 0
                      ) -> dict[str, float]:
        """Metrics of a stream of (images [b, H, W, C] in [-1, 1], class ids [b] or None) against the reference.

        Images are reduced to features batch by batch, so large sets never sit in memory. "accuracy" needs
        class ids for every batch and a classifier whose classes they index.
        """
        checked = ((self._check_shape(images), labels) for images, labels in batches)
        features, logits, ids = _features_and_logits(checked, self.extractor, self.classifier)
        mu, sigma = metrics.feature_statistics(features)
        kid, kid_std = metrics.kernel_inception_distance(
            features, self.reference.features, num_subsets=self.kid_subsets, subset_size=self.kid_subset_size,
            seed=seed)
        result = {"fid": metrics.frechet_distance(mu, sigma, self.reference.mu, self.reference.sigma),
                  "kid": kid, "kid_std": kid_std}
        if logits is not None:
            with_ids = ids is not None and self.y_dim == logits.shape[1]
            result.update(scores_from_logits(logits, ids if with_ids else None))
        return result

    def _check_shape(self, images: np.ndarray) -> np.ndarray:
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"images of shape {tuple(images.shape[1:])}, but this evaluator measures "
                             f"{self.image_shape} images")
        return images


# --------------------------------------------------------------------------------------------------------------
# Creating an evaluator


def create_evaluator(cfg: TrainConfig, *, c_dim: int, y_dim: int, cache_dir: str | None = None,
                     kid_subsets: int = KID_SUBSETS) -> Evaluator:
    """The evaluator of a run: extractor from --eval_features, real reference from the dataset, both checked.

    Create it once, before training starts, so flag errors come before step 0; the real reference is computed
    on the first call for a dataset/extractor/size and read from the cache afterwards.

    Args:
      cfg: the run's settings (dataset, data_dir, sizes, z_dim, z_dist, eval_features, fid_weights,
        classifier_dir, checkpoint_dir).
      c_dim: channels of the generated images (from the data).
      y_dim: classes of a conditional generator (0 = unconditional).
      cache_dir: where the reference is cached; None: `<cfg.checkpoint_dir>/eval_cache`.
      kid_subsets: subset pairs KID averages over. With 128-d classifier features and 1,000 samples, 100
        take 2-10 s on 2 cores (depending on what else runs), 20 (`TRAINING_KID_SUBSETS`) a fifth of that.

    Returns:
      The evaluator.

    Raises:
      FlagError: naming eval_features (classifier features on images that are not 28x28x1), classifier_dir
        (no classifier there) or fid_weights (inception features without a weights file).
    """
    image_shape = (cfg.output_height, cfg.output_width, c_dim)
    classifier = None
    if resolve_features(cfg, c_dim) == "classifier":
        classifier = load_eval_classifier(cfg)
        extractor = metrics.ClassifierFeatures(classifier)
    else:
        extractor = create_inception(cfg, image_shape)
    cache_dir = cache_dir or os.path.join(cfg.checkpoint_dir, "eval_cache")
    reference = load_reference(cfg, extractor, image_shape, cache_dir, classifier=classifier)
    return Evaluator(extractor, reference, image_shape=image_shape, z_dim=cfg.z_dim, z_dist=cfg.z_dist,
                     y_dim=y_dim, classifier=classifier, kid_subsets=kid_subsets)


def resolve_features(cfg: TrainConfig, c_dim: int) -> str:
    """"classifier" or "inception": --eval_features, with auto meaning classifier for 28x28x1 mnist/fashion_mnist."""
    shape = (cfg.output_height, cfg.output_width, c_dim)
    if cfg.eval_features == "auto":
        return "classifier" if _is_idx_dataset(cfg) and shape == CLASSIFIER_SHAPE else "inception"
    if cfg.eval_features == "classifier" and shape != CLASSIFIER_SHAPE:
        raise FlagError("eval_features", f"classifier features need 28x28x1 images, but this run makes "
                                         f"{'x'.join(map(str, shape))}; use --eval_features inception with "
                                         "--fid_weights")
    return cfg.eval_features


def classifier_path(cfg: TrainConfig) -> str:
    """--classifier_dir, or checkpoints/classifier_<dataset> (where `python -m dcgan_tf.classifier` saves)."""
    return cfg.classifier_dir or os.path.join("checkpoints", f"classifier_{cfg.dataset}")


def load_eval_classifier(cfg: TrainConfig):
    """The classifier of --classifier_dir; FlagError naming classifier_dir when it is missing or damaged."""
    path = classifier_path(cfg)
    if not all(os.path.isfile(os.path.join(path, name)) for name in (WEIGHTS_FILE, CONFIG_FILE)):
        raise FlagError("classifier_dir", f"no classifier in {path}; train one with python -m dcgan_tf.classifier "
                                          f"--dataset {cfg.dataset} --data_dir {cfg.data_dir} "
                                          f"--classifier_out {path}")
    try:
        return load_classifier(path)
    except DcganError as e:
        raise FlagError("classifier_dir", str(e)) from e


def create_inception(cfg: TrainConfig, image_shape: tuple[int, int, int]) -> metrics.InceptionFeatures:
    """InceptionV3 features from --fid_weights; FlagError naming fid_weights when none is given."""
    if not cfg.fid_weights:
        raise FlagError("fid_weights", f"inception features (--eval_features {cfg.eval_features}, "
                                       f"{'x'.join(map(str, image_shape))} images of {cfg.dataset}) need "
                                       "InceptionV3 weights: download InceptionV3 no-top weights on a machine with "
                                       "internet (keras.applications.InceptionV3(include_top=False, "
                                       "pooling='avg').save_weights('inception.weights.h5')) and pass the file")
    return metrics.InceptionFeatures(cfg.fid_weights, input_size=INCEPTION_SIZE)


# --------------------------------------------------------------------------------------------------------------
# The real reference


def load_reference(cfg: TrainConfig, extractor: metrics.FeatureExtractor, image_shape: tuple[int, int, int],
                   cache_dir: str, *, classifier=None) -> RealReference:
    """The real reference of cfg's dataset, computed once and then read from cache_dir.

    Args:
      cfg: dataset, data_dir and the data preparation flags.
      extractor: the evaluator's extractor.
      image_shape: (H, W, C) the real images are brought to (the generator's).
      cache_dir: folder of the cache files.
      classifier: when given, the real images' classifier_score (and accuracy) are stored too.
    """
    source = reference_source(cfg)
    key = {"version": CACHE_VERSION, "source": source, "image_shape": list(image_shape),
           "extractor": extractor.name, "kid_features": KID_REAL_FEATURES, **_data_options(cfg)}

    def compute() -> dict[str, np.ndarray]:
        batches = _reference_batches(cfg, image_shape)
        features, logits, labels = _features_and_logits(batches, extractor, classifier)
        keep = np.random.default_rng(0).permutation(len(features))[:KID_REAL_FEATURES]
        mu, sigma = metrics.feature_statistics(features)
        arrays = {"mu": mu, "sigma": sigma, "features": features[np.sort(keep)],
                  "num_images": np.array(len(features))}
        if logits is not None:
            arrays.update({k: np.array(v) for k, v in scores_from_logits(logits, labels).items()})
        return arrays

    arrays = metrics.arrays_cached(cache_dir, key, compute, prefix="reference")
    scores = {k: float(arrays[k]) for k in ("classifier_score", "accuracy") if k in arrays}
    return RealReference(arrays["mu"], arrays["sigma"], arrays["features"], scores, int(arrays["num_images"]),
                         source)


def reference_source(cfg: TrainConfig) -> str:
    """Which real images the reference holds, in words (it goes into the cache key and eval.json)."""
    if _is_idx_dataset(cfg):
        if cfg.idx_split == "train":
            return f"{cfg.dataset.lower()} test split (held out: the run trained with --idx_split train)"
        return f"{cfg.dataset.lower()} test split (not held out: the run also trained on it, --idx_split all)"
    return f"{cfg.dataset} training images (at most {REAL_IMAGES})"


def _data_options(cfg: TrainConfig) -> dict:
    """The flags that decide which real images the reference holds and how they are prepared."""
    options = {"dataset": cfg.dataset, "data_dir": os.path.abspath(cfg.data_dir)}
    if not _is_idx_dataset(cfg):
        options.update(input_fname_pattern=cfg.input_fname_pattern, crop=cfg.crop, input_height=cfg.input_height,
                       input_width=cfg.input_width, train_size=min(cfg.train_size, REAL_IMAGES))
    return options


def _is_idx_dataset(cfg: TrainConfig) -> bool:
    return cfg.dataset.lower() in LABELLED_DATASETS


def _reference_batches(cfg: TrainConfig, image_shape: tuple[int, int, int]
                       ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """The reference images as (float32 [b, H, W, C] in [-1, 1], class ids [b] or None) batches."""
    if _is_idx_dataset(cfg):
        return _idx_batches(cfg, "test", image_shape)
    return _folder_batches(cfg, image_shape)


def _idx_batches(cfg: TrainConfig, split: str, image_shape: tuple[int, int, int], *, num_images: int | None = None,
                 seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One idx split (all of it, or a seeded subset of num_images) as float batches with their class ids."""

    images, labels = load_idx(cfg.dataset.lower(), cfg.data_dir, split)  # uint8 [N, 28, 28, 1], int64 [N]
    if num_images is not None and num_images < len(images):
        keep = np.sort(np.random.default_rng(seed).choice(len(images), num_images, replace=False))
        images, labels = images[keep], labels[keep]
    for start in range(0, len(images), _CHUNK):
        chunk = images[start:start + _CHUNK].astype(np.float32) / 127.5 - 1.0
        yield _fit_shape(chunk, image_shape), labels[start:start + _CHUNK]


def _fit_shape(images: np.ndarray, image_shape: tuple[int, int, int]) -> np.ndarray:
    """Resizes (bilinear) and repeats grey channels so 28x28x1 idx images match the generator's images."""
    height, width, channels = image_shape
    if images.shape[1:3] != (height, width):
        images = np.clip(tf.image.resize(images, (height, width), method="bilinear").numpy(), -1.0, 1.0)
    if images.shape[-1] != channels:
        images = np.repeat(images, channels, axis=-1)
    return images


def _folder_batches(cfg: TrainConfig, image_shape: tuple[int, int, int]) -> Iterator[tuple[np.ndarray, None]]:
    """Up to REAL_IMAGES training images prepared as `dcgan_tf.data` prepares them for training, unflipped."""

    real_cfg = dataclasses.replace(cfg, train_size=min(cfg.train_size, REAL_IMAGES), flip=False, conditional=False)
    data = load_train_data(real_cfg, seed=0)
    if data.c_dim != image_shape[2]:
        raise FlagError("dataset", f"{cfg.dataset} has {data.c_dim}-channel images but the generator makes "
                                   f"{image_shape[2]}; evaluate with the data the run was trained on")
    for images, _ in data.dataset.take(data.steps_per_epoch):
        yield images.numpy(), None


def _features_and_logits(batches: Iterable[tuple[np.ndarray, np.ndarray | None]],
                         extractor: metrics.FeatureExtractor, classifier=None
                         ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Features [N, D], classifier logits [N, K] (or None) and class ids [N] (or None) of image batches."""
    features, logits, ids = [], [], []
    for images, labels in batches:
        features.append(extractor(images))
        if classifier is not None:
            logits.append(predict_logits(classifier, images))
        ids.append(labels)
    with_ids = all(i is not None for i in ids)
    return (np.concatenate(features), np.concatenate(logits) if logits else None,
            np.concatenate(ids) if with_ids else None)


# --------------------------------------------------------------------------------------------------------------
# Whole runs and the real floor


def evaluate_run(cfg: TrainConfig, *, num_samples: int | None = None, cache_dir: str | None = None) -> dict:
    """Measures the latest checkpoint of cfg's run and writes `eval.json` into its run folder.

    Args:
      cfg: this command's settings; the architecture flags must match the saved run's.
      num_samples: images to generate; None: cfg.num_eval_samples.
      cache_dir: where the real reference is cached; None: `<cfg.checkpoint_dir>/eval_cache`.

    Returns:
      The record written: {"metrics": {...}, "step", "num_samples", "seed", "extractor", "reference",
      "dataset", "checkpoint"}.
    """
    paths = RunPaths.from_config(cfg)
    run = load_run(paths.checkpoint_dir, cfg)
    # sample z as the generator was trained; name the reference by what the run trained on
    run_cfg = dataclasses.replace(cfg, z_dist=run.config.z_dist, idx_split=run.config.idx_split)
    evaluator = create_evaluator(run_cfg, c_dim=run.c_dim, y_dim=run.y_dim, cache_dir=cache_dir)
    num_samples = num_samples or cfg.num_eval_samples
    batches = evaluator.generate(run.generator, num_samples=num_samples, seed=cfg.seed)
    scores = evaluator.score_batches(track(batches, num_samples, prefix="evaluate ", size=lambda b: len(b[0])),
                                     seed=cfg.seed)
    record = {"metrics": scores, "step": run.step, "num_samples": num_samples, "seed": cfg.seed,
              "extractor": evaluator.name, "dataset": cfg.dataset, "checkpoint": run.checkpoint_path,
              "reference": f"{evaluator.reference.source}, {evaluator.reference.num_images} images"}
    os.makedirs(paths.run_dir, exist_ok=True)
    write_json_atomic(os.path.join(paths.run_dir, EVAL_FILE), record)
    return record


def real_floor(cfg: TrainConfig, *, num_samples: int | None = None, cache_dir: str | None = None, seed: int = 0,
               evaluator: Evaluator | None = None) -> dict[str, float]:
    """What real images score: a seeded subset of the train split measured like generated images.

    fid/kid/kid_std compare num_samples train images with the test-split reference, so they are the floor a
    generator of num_samples images is compared with. classifier_score and accuracy are the test images' own
    (the classifier never trained on them, as it never saw generated images).

    Args:
      cfg: an idx dataset's settings (mnist, fashion_mnist).
      num_samples: train images to measure; None: cfg.num_eval_samples.
      cache_dir: as in create_evaluator.
      seed: picks the train images and the KID subsets.
      evaluator: reuse this evaluator (it must be cfg's); None creates one for 1-channel images.

    Raises:
      FlagError: naming dataset when it has no test split.
    """
    if not _is_idx_dataset(cfg):
        raise FlagError("dataset", f"the real floor compares a test split with a train split, which only "
                                   f"{' and '.join(LABELLED_DATASETS)} have; got {cfg.dataset!r}")
    evaluator = evaluator or create_evaluator(cfg, c_dim=1, y_dim=cfg.y_dim, cache_dir=cache_dir)
    train_batches = _idx_batches(cfg, "train", evaluator.image_shape, num_images=num_samples or cfg.num_eval_samples,
                                 seed=seed)
    scores = evaluator.score_batches(((images, None) for images, _ in train_batches), seed=seed)
    floor = {k: scores[k] for k in ("fid", "kid", "kid_std")}
    floor.update(evaluator.reference.scores)
    return floor


def format_metrics(scores: dict[str, float]) -> str:
    """One line for logs: "fid 12.34  kid 0.0123 +- 0.0004  classifier_score 8.12  accuracy 0.853"."""
    parts = []
    if "fid" in scores:
        parts.append(f"fid {scores['fid']:.3f}")
    if "kid" in scores:
        parts.append(f"kid {scores['kid']:.5f} +- {scores.get('kid_std', 0.0):.5f}")
    if "classifier_score" in scores:
        parts.append(f"classifier_score {scores['classifier_score']:.3f}")
    if "accuracy" in scores:
        parts.append(f"accuracy {scores['accuracy']:.4f}")
    return "  ".join(parts)
