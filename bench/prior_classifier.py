"""Benchmark: how well saved classifiers recognise Fashion-MNIST test images from their known pixels alone.

For each classifier (name=folder), the accuracy on the 10,000 test images: whole; with the centre 14x14 hole and
with 80% of the pixels missing at random (the masks of bench/completion.py), each hole filled smoothly from the
known pixels (masks.smooth_fill, what the class prior of complete.py shows its classifier); and with a random
training-style hole (masks.training_mask). Compares the plain classifier with ones trained with --mask_augment.

Usage, from the project root:
    python bench/prior_classifier.py plain=checkpoints/classifier_fashion_mnist \
        masked=checkpoints/classifier_fashion_mnist_masked
"""

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain script: find dcgan_tf without installing it

from dcgan_tf.classifier import load_classifier, mask_some, predict_logits  # noqa: E402
from dcgan_tf.datasets import load_idx  # noqa: E402
from dcgan_tf.masks import make_mask, smooth_fill  # noqa: E402

MASKS = (("centre hole", "center", {}), ("random 80%", "random", {"random_fraction": 0.8}))


def main():
    images, labels = load_idx("fashion_mnist", str(ROOT / "data"), "test")
    images = images.astype(np.float32) / 127.5 - 1.0
    inputs = {"whole": images}
    for name, mask_type, kwargs in MASKS:
        rng = np.random.default_rng(0)
        masks = np.stack([make_mask(mask_type, 28, 28, rng=rng, **kwargs) for _ in images])
        inputs[f"{name}, filled"] = smooth_fill(images, masks)
    inputs["training hole, filled"] = mask_some(images, 1.0, np.random.default_rng(0))
    print("| classifier | " + " | ".join(inputs) + " |\n" + "| --- " * (len(inputs) + 1) + "|")
    for item in sys.argv[1:]:
        name, path = item.split("=", 1)
        model = load_classifier(path)
        accuracy = [np.mean(np.argmax(predict_logits(model, x), -1) == labels) for x in inputs.values()]
        print(f"| {name} | " + " | ".join(f"{a:.1%}" for a in accuracy) + " |", flush=True)


if __name__ == "__main__":
    main()
