"""Benchmark: label-free semantic inpainting of held-out Fashion-MNIST test images against OpenCV (issue 16).

Uses a conditional Fashion-MNIST run trained with `--idx_split train` (the test split never seen; any other run
is refused), or trains one with main.py (`--preset tuned --max_minutes 20`, run folder checkpoints/fm_heldout).
Completes the first --images test images with a `center` mask and a `random` (80% missing) mask, without
their labels, as `complete.py` does by default, and reports per method on the same images and masks:
  class = true class: how often the class chosen for the completion is the image's true class;
  classifier accuracy: the tool's Fashion-MNIST classifier (checkpoints/classifier_fashion_mnist, trained on
      the train split) on the result, against the true labels; on the original images for reference. The
      label-free choice is guided by another classifier, found as complete.py finds it (the --mask_augment one,
      checkpoints/classifier_fashion_mnist_masked, when present) or given with --prior_classifier; --judge adds
      a second judge (e.g. another seed) whose figure follows after a slash. A prior classifier that is one of
      the judges (the same folder or the same saved weights) is refused: the chooser never judges;
  hole PSNR and SSIM: over the missing pixels only;
  wall time: seconds for all the images (the z search compiled beforehand), and per image.
Methods: the masked input (the hole at mid grey, no completion); ours, label-free (complete.py's defaults:
weighted contextual loss, Poisson blending, the default class choice); ours with the true class given (the
cost reference, as `complete.py --label`); OpenCV Telea and Navier-Stokes inpainting (radius 3).

Usage, from the project root:
    python bench/completion.py --run checkpoints/fm_heldout [--images 256] [--n_iter 400]
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain script: find dcgan_tf without installing it

from dcgan_tf.blend import blend_images  # noqa: E402
from dcgan_tf.class_choice import weighted_known_pixels_prior  # noqa: E402
from dcgan_tf.class_prior import find_classifier, load_classify  # noqa: E402
from dcgan_tf.classifier import load_classifier, predict_logits  # noqa: E402
from dcgan_tf.completion import Completer  # noqa: E402
from dcgan_tf.datasets import load_idx  # noqa: E402
from dcgan_tf.masks import make_mask  # noqa: E402
from dcgan_tf.metrics import psnr, ssim  # noqa: E402
from dcgan_tf.runs import load_run  # noqa: E402

MASKS = (("center", {}), ("random", {"random_fraction": 0.8}))
SEED = 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a run trained with --idx_split train (default: train one)")
    parser.add_argument("--data_dir", default=str(ROOT / "data"))  # the repo's Fashion-MNIST
    parser.add_argument("--classifier", default=str(ROOT / "checkpoints" / "classifier_fashion_mnist"))
    parser.add_argument("--judge", default="", help="a second classifier (e.g. another seed) whose accuracy is "
                        "reported too")
    parser.add_argument("--prior_classifier", default="", help="the classifier of the label-free class choice "
                        "(default: found next to the run, as complete.py does)")
    parser.add_argument("--minutes", type=float, default=20, help="training time when a run is trained")
    parser.add_argument("--images", type=int, default=256, help="held-out test images to complete")
    parser.add_argument("--n_iter", type=int, default=400)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--no_given", action="store_true", help="skip the true-class reference run")
    parser.add_argument("--masks", default="center,random", help="mask types to run: center, random or both")
    parser.add_argument("--pilot_iter", type=int, default=None, help="the pilot's length (default n_iter // 10)")
    return parser.parse_args()


def same_classifier(a: str, b: str) -> bool:
    """Whether two classifier folders hold one classifier: the same folder, or the same saved weights (the
    weights_sha256 of their classifier.json)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True

    def weights(path):
        try:
            with open(os.path.join(path, "classifier.json")) as f:
                return json.load(f).get("weights_sha256")
        except (OSError, ValueError, AttributeError):
            return None

    return weights(a) is not None and weights(a) == weights(b)


def chooser_judges(prior_path: str, judge_paths: list[str]) -> str | None:
    """The one-line error when the class prior's classifier is one of the judges, else None."""
    for judge in judge_paths:
        if same_classifier(prior_path, judge):
            return (f"error: the class prior's classifier {prior_path} is also a judge ({judge}): the classifier "
                    "that chooses the class must not judge the result; give --prior_classifier another one (e.g. "
                    "python -m dcgan_tf.classifier --mask_augment 0.8 --epochs 30) or another --classifier/--judge")
    return None


def train_run(args) -> str:
    """Trains (or continues) checkpoints/fm_heldout on the train split with main.py; returns its folder."""
    cmd = [sys.executable, str(ROOT / "main.py"), "--dataset", "fashion_mnist", "--data_dir", args.data_dir,
           "--input_height", "28", "--output_height", "28", "--train", "--idx_split", "train", "--preset", "tuned",
           "--max_minutes", str(args.minutes), "--out_name", "fm_heldout"]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return str(ROOT / "checkpoints" / "fm_heldout")


def scores(images, completions, masks) -> tuple[float, float]:
    """Mean hole PSNR and SSIM."""
    holes = 1.0 - masks
    return (float(np.mean([psnr(y, c, h) for y, c, h in zip(images, completions, holes)])),
            float(np.mean([ssim(y, c, h) for y, c, h in zip(images, completions, holes)])))


def run_ours(completer, classify, images, masks, labels, args):
    """Completes with the DCGAN: the true labels, or None = label-free as complete.py does by default (the
    classifier prior included); returns (completions, chosen classes, seconds)."""
    start = time.time()
    prior = None if labels is not None else weighted_known_pixels_prior(classify, images, masks)
    result = completer(images, masks, labels, seeds=range(len(images)), n_iter=args.n_iter, class_prior=prior,
                       classify=classify, pilot_iter=args.pilot_iter)
    out = blend_images(images, result.generated, masks, "poisson")
    return out, result.labels, time.time() - start


def run_opencv(images, masks, method: str):
    """cv2.inpaint with INPAINT_TELEA or INPAINT_NS (radius 3) of the uint8 images; returns (images, seconds)."""
    import cv2

    flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[method]
    start = time.time()
    out = []
    for y, m in zip(images, masks):
        y8 = np.clip(np.rint((y + 1.0) * 127.5), 0, 255).astype(np.uint8)
        hole = (m[..., 0] < 0.5).astype(np.uint8)
        filled = cv2.inpaint(y8, hole, 3, flag).reshape(y.shape)
        out.append(filled.astype(np.float32) / 127.5 - 1.0)
    return np.stack(out), time.time() - start


def load_held_out(args):
    """The run (refused unless trained on the train split only) and the first --images test images."""
    run = load_run(args.run or train_run(args))
    if run.flags.get("idx_split") != "train" or not run.y_dim:
        sys.exit(f"{run.checkpoint_dir}: needs a conditional Fashion-MNIST run trained with --idx_split train "
                 f"(this one has idx_split {run.flags.get('idx_split')!r}, y_dim {run.y_dim})")
    images, labels = load_idx("fashion_mnist", args.data_dir, "test")
    return run, images[:args.images].astype(np.float32) / 127.5 - 1.0, labels[:args.images]


def main():
    args = parse_args()
    run_dir = args.run or str(ROOT / "checkpoints" / "fm_heldout")  # train_run's folder
    prior_path = args.prior_classifier or find_classifier(run_dir, "fashion_mnist")  # as complete.py finds it
    if not prior_path or prior_path == "none":
        sys.exit("no classifier for the class prior: train one with python -m dcgan_tf.classifier --mask_augment 0.8")
    judge_paths = [args.classifier] + ([args.judge] if args.judge else [])
    error = chooser_judges(prior_path, judge_paths)
    if error:  # before any training or loading
        sys.exit(error)
    run, images, labels = load_held_out(args)
    classify, prior_path = load_classify(prior_path, run.checkpoint_dir, "fashion_mnist")
    judges = [load_classifier(path) for path in judge_paths]
    accuracy = lambda x: [float(np.mean(np.argmax(predict_logits(j, x), -1) == labels)) for j in judges]
    completer = Completer(run.generator, run.discriminator, batch_size=min(args.batch_size, len(images)),
                          z_dim=run.config.z_dim, y_dim=run.y_dim, z_dist=run.config.z_dist, loss=run.config.loss)
    completer(images[:1], np.ones_like(images[:1]), labels[:1], n_iter=2)  # compile outside the timing
    print(f"run {run.checkpoint_path} (step {run.step}, idx_split train); {len(images)} held-out test images; "
          f"{args.n_iter} momentum iterations, lr 0.01, lam 0.1, batch {completer.batch_size}; class prior from "
          f"{prior_path}; judges' accuracy on the original images {' / '.join(f'{a:.1%}' for a in accuracy(images))}",
          flush=True)
    rows = []
    for mask_type, kwargs in [m for m in MASKS if m[0] in args.masks.split(",")]:
        rng = np.random.default_rng(SEED)
        masks = np.stack([make_mask(mask_type, 28, 28, rng=rng, **kwargs) for _ in images])
        rows.append((mask_type, "masked input (no completion)", None, images * masks, 0.0))
        methods = [("ours, label-free (default)", None)] + ([] if args.no_given else [("ours, true class given",
                                                                                        labels)])
        for name, given in methods:
            out, chosen, seconds = run_ours(completer, classify, images, masks, given, args)
            rows.append((mask_type, name, float(np.mean(chosen == labels)), out, seconds))
            print(f"{mask_type} {name}: {seconds:.0f}s", flush=True)
        for method in ("telea", "ns"):
            out, seconds = run_opencv(images, masks, method)
            rows.append((mask_type, f"OpenCV {'Telea' if method == 'telea' else 'Navier-Stokes'}", None, out, seconds))
        print_table(rows, images, labels, accuracy, masks_of={mask_type: masks}, only=mask_type)


def print_table(rows, images, labels, accuracy, masks_of, only):
    """Markdown rows of one mask type."""
    print("| mask | method | class = true class | classifier accuracy | hole PSNR (dB) | hole SSIM | wall time |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for mask_type, name, class_acc, out, seconds in rows:
        if mask_type != only:
            continue
        p, s = scores(images, out, masks_of[mask_type])
        cls = "-" if class_acc is None else f"{class_acc:.1%}"
        wall = "-" if not seconds else f"{seconds:.2f} s ({1000 * seconds / len(images):.2f} ms/image)"
        acc = " / ".join(f"{a:.1%}" for a in accuracy(out))
        print(f"| {mask_type} | {name} | {cls} | {acc} | {p:.2f} | {s:.3f} | {wall} |", flush=True)


if __name__ == "__main__":
    main()
