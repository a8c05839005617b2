"""Benchmark: semantic inpainting of held-out Fashion-MNIST test images against OpenCV's Telea inpainting.

Trains the conditional Fashion-MNIST DCGAN with main.py into checkpoints/fashion_mnist_28x28 (resumed to
--epoch; a finished run is reused as is), or uses the trained run whose checkpoint folder --run names, then
completes the first
--images test images with a `center` and a `random` (80% missing) mask and prints the hole PSNR and SSIM of
  ours:  weighted contextual loss + Poisson blending (complete.py's defaults),
  plain: unweighted contextual loss + paste (bamos's original),
  telea: cv2.inpaint(..., INPAINT_TELEA) (skipped when opencv-python-headless, the `bench` extra, is absent),
and the optimisation speed in image-iterations per second. The conditional model is given each image's true
class (as `complete.py --label` would); complete.py without --label tries all ten, which costs 10x.

Usage, from the project root:
    python bench/completion.py [--epoch 1 | --run CHECKPOINT_FOLDER] [--images 128] [--n_iter 500]

Note: main.py trains Fashion-MNIST on train + test (70,000 images, as carpedm20 did with MNIST), so the test
images completed here were seen in training; a GAN trained for a few epochs does not reproduce single images.
"""

import argparse
import gzip
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain script: find dcgan_tf without installing it

from dcgan_tf.blend import PoissonBlender, paste  # noqa: E402
from dcgan_tf.completion import Completer, psnr, ssim  # noqa: E402
from dcgan_tf.masks import make_mask  # noqa: E402
from dcgan_tf.runs import load_run  # noqa: E402

MASKS = (("center", {}), ("random", {"random_fraction": 0.8}))
SEED = 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a trained run's checkpoint folder (default: train one)")
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--epoch", type=int, default=1, help="epochs to train when the run has fewer")
    parser.add_argument("--images", type=int, default=128, help="held-out test images to complete")
    parser.add_argument("--n_iter", type=int, default=500)
    parser.add_argument("--batch_size", type=int, default=64)
    return parser.parse_args()


def train_run(args) -> str:
    """Trains (or resumes to --epoch) checkpoints/fashion_mnist_28x28 with main.py; returns its folder."""
    cmd = [sys.executable, str(ROOT / "main.py"), "--dataset", "fashion_mnist", "--data_dir", args.data_dir,
           "--input_height", "28", "--output_height", "28", "--train", "--epoch", str(args.epoch)]
    print("$ " + " ".join(cmd), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT)
    print(f"training: {time.time() - start:.0f}s")
    return str(ROOT / "checkpoints" / "fashion_mnist_28x28")


def load_test_split(data_dir: str, n: int):
    """The first n Fashion-MNIST test images as [n, 28, 28, 1] in [-1, 1], and their labels [n]."""
    folder = pathlib.Path(data_dir) / "fashion-mnist"
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:n]
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return images.astype(np.float32) / 127.5 - 1.0, labels.astype(np.int64)


def scores(images, completions, masks) -> tuple[float, float]:
    """Mean hole PSNR and SSIM."""
    holes = 1.0 - masks
    return (float(np.mean([psnr(y, c, h) for y, c, h in zip(images, completions, holes)])),
            float(np.mean([ssim(y, c, h) for y, c, h in zip(images, completions, holes)])))


def run_gan(run, images, masks, labels, args, weighted: bool, blend: str):
    """Completes with the DCGAN; returns (completions, image-iterations per second)."""
    completer = Completer(run.generator, run.discriminator, batch_size=args.batch_size, z_dim=run.config.z_dim,
                          y_dim=run.y_dim, z_dist=run.config.z_dist, loss=run.config.loss,
                          weighted_mask=weighted)
    completer(images[:1], masks[:1], labels[:1], n_iter=2)  # compile outside the timing
    start = time.time()
    result = completer(images, masks, labels, seeds=range(len(images)), n_iter=args.n_iter)
    speed = len(images) * args.n_iter / (time.time() - start)
    if blend == "poisson":
        out = np.stack([PoissonBlender(m)(y, g) for y, g, m in zip(images, result.generated, masks)])
    else:
        out = paste(images, result.generated, masks)
    return out, speed


def classifier_accuracy_fn(labels):
    """accuracy(images) of the tool's Fashion-MNIST classifier against the true labels, or None without one."""
    from dcgan_tf.classifier import load_classifier, predict_logits

    path = ROOT / "checkpoints" / "classifier_fashion_mnist"
    if not (path / "classifier.json").exists():
        print(f"no classifier in {path}: accuracy skipped (python -m dcgan_tf.classifier --data_dir ...)")
        return lambda images: float("nan")
    model = load_classifier(str(path))
    return lambda images: float(np.mean(np.argmax(predict_logits(model, images), -1) == labels))


def run_telea(images, masks):
    """OpenCV's Telea inpainting (radius 3) of uint8 images, or None without OpenCV."""
    try:
        import cv2
    except ImportError:
        return None
    out = []
    for y, m in zip(images, masks):
        y8 = np.clip(np.rint((y + 1.0) * 127.5), 0, 255).astype(np.uint8)
        hole = (m[..., 0] < 0.5).astype(np.uint8)
        filled = cv2.inpaint(y8, hole, 3, cv2.INPAINT_TELEA).reshape(y.shape)
        out.append(filled.astype(np.float32) / 127.5 - 1.0)
    return np.stack(out)


def main():
    args = parse_args()
    if not (pathlib.Path(args.data_dir) / "fashion-mnist").is_dir():
        sys.exit(f"skipped: no Fashion-MNIST in {args.data_dir}")
    run = load_run(args.run or train_run(args))
    images, true_labels = load_test_split(args.data_dir, args.images)
    labels = true_labels if run.y_dim else None
    accuracy = classifier_accuracy_fn(true_labels)
    print(f"classifier accuracy on the original images: {accuracy(images):.3f}")
    print(f"run {run.checkpoint_path} (step {run.step}); {len(images)} test images, {args.n_iter} iterations, "
          f"momentum lr 0.01, lam 0.1, batch {args.batch_size}")
    rows = []
    for mask_type, kwargs in MASKS:
        rng = np.random.default_rng(SEED)
        masks = np.stack([make_mask(mask_type, 28, 28, rng=rng, **kwargs) for _ in images])
        masked = images * masks  # the hole at 0 (mid grey): what a classifier sees without completion
        rows.append((mask_type, "masked input (no completion)", *scores(images, masked, masks), accuracy(masked), "-"))
        for name, weighted, blend in (("ours (weighted + poisson)", True, "poisson"),
                                      ("plain (unweighted + paste)", False, "none")):
            out, speed = run_gan(run, images, masks, labels, args, weighted, blend)
            rows.append((mask_type, name, *scores(images, out, masks), accuracy(out), f"{speed:.0f}"))
            print(rows[-1], flush=True)
        telea = run_telea(images, masks)
        rows.append((mask_type, "opencv telea", *scores(images, telea, masks), accuracy(telea), "-")
                    if telea is not None else
                    (mask_type, "opencv telea", float("nan"), float("nan"), float("nan"), "skipped: no cv2"))
    print("\n| mask | method | hole PSNR (dB) | hole SSIM | classifier accuracy | image-iterations/s |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for mask_type, name, p, s, acc, speed in rows:
        print(f"| {mask_type} | {name} | {p:.2f} | {s:.3f} | {acc:.3f} | {speed} |")


if __name__ == "__main__":
    main()
