"""Sample quality by epoch: FID, KID, classifier score and accuracy of a conditional Fashion-MNIST DCGAN.

Trains with `dcgan_tf.training.train` one epoch at a time (each call resumes the run), and after every epoch
measures `--num_samples` generated images against the 10k Fashion-MNIST test images with the classifier's
features. Starts with the real floor (10k real train images measured the same way) and ends with a table.

Needs the classifier (`python -m dcgan_tf.classifier --dataset fashion_mnist`,
about 75 s). One epoch takes about 2-5 minutes on 2 CPU cores.

  python bench/fid_by_epoch.py [--epochs 5] [--num_samples 10000] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

from dcgan_tf.config import RunPaths, TrainConfig
from dcgan_tf.evaluate import create_evaluator, format_metrics, real_floor
from dcgan_tf.runs import load_run
from dcgan_tf.training import train

COLUMNS = ("fid", "kid", "kid_std", "classifier_score", "accuracy")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs to train and measure")
    parser.add_argument("--num_samples", type=int, default=10_000, help="generated images per measurement")
    parser.add_argument("--data_dir", default="data", help="folder holding fashion-mnist/")
    parser.add_argument("--classifier_dir", default="checkpoints/classifier_fashion_mnist")
    parser.add_argument("--out", default="", help="run folder (resumed if it holds a run); default: a temp folder")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def create_config(args: argparse.Namespace, root: str) -> TrainConfig:
    """The conditional Fashion-MNIST run with carpedm20's defaults, all outputs under root."""
    return TrainConfig(dataset="fashion_mnist", data_dir=args.data_dir, input_height=28, output_height=28,
                       epoch=1, seed=args.seed, classifier_dir=args.classifier_dir,
                       out_dir=os.path.join(root, "out"), checkpoint_dir=os.path.join(root, "checkpoints"),
                       sample_dir=os.path.join(root, "samples")).validate()


def print_table(rows: list[dict]) -> None:
    """One line per measurement: name, step, the metrics and the seconds spent training and measuring."""
    print(f"\n{'':>6} {'step':>6} " + " ".join(f"{c:>16}" for c in COLUMNS) + f" {'train s':>8} {'eval s':>7}")
    for row in rows:
        cells = " ".join(f"{row[c]:>16.5f}" if c in row else f"{'-':>16}" for c in COLUMNS)
        print(f"{row['name']:>6} {row.get('step', '-'):>6} {cells} {row.get('train_s', 0):>8.0f} "
              f"{row['eval_s']:>7.1f}")


def main() -> None:
    args = parse_args()
    root = args.out or tempfile.mkdtemp(prefix="fid_by_epoch_")
    cfg = create_config(args, root)
    print(f"run folder {root}; {args.num_samples} samples per measurement")
    evaluator = create_evaluator(cfg, c_dim=1, y_dim=cfg.y_dim)
    t0 = time.perf_counter()
    floor = real_floor(cfg, num_samples=args.num_samples, seed=args.seed, evaluator=evaluator)
    rows = [{"name": "floor", **floor, "eval_s": time.perf_counter() - t0}]
    print(f"real floor (10k test vs {args.num_samples} train): {format_metrics(floor)}")
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        result = train(dataclasses.replace(cfg, epoch=epoch))  # resumes the run and trains one more epoch
        train_s, t0 = time.perf_counter() - t0, time.perf_counter()
        G = load_run(RunPaths.from_config(cfg).checkpoint_dir, cfg).generator
        scores = evaluator(G, num_samples=args.num_samples, seed=args.seed)
        rows.append({"name": f"ep {epoch}", "step": result.step, **scores, "train_s": train_s,
                     "eval_s": time.perf_counter() - t0})
        print(f"epoch {epoch} (step {result.step}, {train_s:.0f}s): {format_metrics(scores)}")
    print_table(rows)


if __name__ == "__main__":
    main()
