"""Benchmark: train the Fashion-MNIST classifier, then measure the metric floor of real data.

Prints the test accuracy and training time, then the "floor" every generator is compared with: the domain FID
(classifier features) and KID of the 10k real test images against 10k real train images, and the classifier
score of the test set. Saves the classifier to checkpoints/classifier_fashion_mnist for later metric runs.

Usage, from the project root:
    python bench/classifier.py [DATA_DIR]    # DATA_DIR defaults to the repo's data/
"""

import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain script: find dcgan_tf without installing it

from dcgan_tf import classifier, metrics  # noqa: E402
from dcgan_tf.datasets import load_idx  # noqa: E402

EPOCHS = 5
BATCH_SIZE = 128
SEED = 0
FLOOR_IMAGES = 10_000


def train(data_dir: str):
    """Trains on the 60k train split; returns the model, the splits and the seconds it took."""
    train_images, train_labels = load_idx("fashion_mnist", data_dir, "train")
    test_images, test_labels = load_idx("fashion_mnist", data_dir, "test")
    log = lambda epoch, m: print(f"  epoch {epoch + 1}: loss {m['loss']:.4f}, train acc {m['accuracy']:.4f}, "
                                 f"{m['seconds']:.1f}s")
    start = time.time()
    model = classifier.train_classifier(train_images, train_labels, epochs=EPOCHS, batch_size=BATCH_SIZE,
                                        seed=SEED, on_epoch_end=log)
    return model, (train_images, train_labels), (test_images, test_labels), time.time() - start


def floor(model, train_images, test_images, test_labels) -> dict:
    """Domain FID / KID of real test vs real train images, and the test set's classifier score."""
    extractor = metrics.ClassifierFeatures(model)
    pick = np.random.default_rng(SEED).choice(train_images.shape[0], FLOOR_IMAGES, replace=False)
    train_features = extractor(classifier.to_model_range(train_images[pick]))
    test_features = extractor(classifier.to_model_range(test_images))
    kid_mean, kid_std = metrics.kernel_inception_distance(test_features, train_features, seed=SEED)
    scores = classifier.classifier_scores(model, classifier.to_model_range(test_images), test_labels)
    return {"fid": metrics.fid_from_features(test_features, train_features), "kid_mean": kid_mean,
            "kid_std": kid_std, **scores}


def main():
    data_dir = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "data")  # the repo's Fashion-MNIST
    print(f"training {EPOCHS} epochs, batch {BATCH_SIZE}, seed {SEED} on fashion_mnist from {data_dir}")
    model, (train_images, _), (test_images, test_labels), seconds = train(data_dir)
    start = time.time()
    result = floor(model, train_images, test_images, test_labels)
    print(f"test accuracy {result['accuracy']:.4f}  (training {seconds:.0f}s)")
    print(f"floor, 10k real test vs 10k real train ({time.time() - start:.0f}s): "
          f"domain FID {result['fid']:.4f}, KID {result['kid_mean']:.5f} +- {result['kid_std']:.5f}, "
          f"test classifier score {result['classifier_score']:.3f}")
    out = str(ROOT / "checkpoints" / "classifier_fashion_mnist")
    classifier.save_classifier(model, out, {"dataset": "fashion_mnist", "epochs": EPOCHS, "batch_size": BATCH_SIZE,
                                            "seed": SEED, "test_accuracy": result["accuracy"]})
    print(f"saved to {out}")


if __name__ == "__main__":
    main()
