"""Training recipes for conditional Fashion-MNIST under the same wall-clock budget: domain FID and label accuracy.

Each recipe is one `main.py --train` command run in its own process with `--max_minutes`, one after the other
(so each has the machine to itself). Afterwards each run's generator is measured like bench/fid_by_epoch.py:
`--num_samples` generated images against the 10k Fashion-MNIST test images, with the tool's classifier features
(domain FID, KID) and the classifier's accuracy on the requested labels. A run trained with --g_ema is measured
twice: with its averaged generator (what the tool uses) and with the raw one.

Needs the classifier (`python -m dcgan_tf.classifier --dataset fashion_mnist`).

  python bench/recipes.py --minutes 18 --recipes plain,tuned       # the recipe table of docs/training.md
  python bench/recipes.py --minutes 4 --recipes gan,lsgan,wgan-gp  # the losses, each with and without EMA
  python bench/recipes.py --minutes 3 --recipes "plain,mine=--g_steps 1 --g_ema 0.999"  # ad-hoc recipes
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dcgan_tf.config import TrainConfig  # noqa: E402
from dcgan_tf.evaluate import create_evaluator, format_metrics  # noqa: E402
from dcgan_tf.runs import load_run  # noqa: E402

RECIPES = {
    "plain": [],  # carpedm20's defaults: double G update, no tricks, float32
    "tuned": ["--preset", "tuned"],  # the tool's best recipe for this budget (config.PRESETS)
    "gan": ["--g_ema", "0.999"],
    "lsgan": ["--loss", "lsgan", "--g_ema", "0.999"],
    "wgan-gp": ["--loss", "wgan-gp", "--d_steps", "5", "--g_steps", "1", "--learning_rate", "0.0001",
                "--beta1", "0", "--g_ema", "0.999"],
}
COLUMNS = ("fid", "kid", "accuracy", "classifier_score")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="plain,tuned",
                        help=f"comma-separated: {', '.join(RECIPES)}, or name=--flag value ... for an ad-hoc one")
    parser.add_argument("--minutes", type=float, default=18.0, help="wall-clock budget of each run (--max_minutes)")
    parser.add_argument("--num_samples", type=int, default=10_000, help="generated images per measurement")
    parser.add_argument("--data_dir", default=os.path.join(ROOT, "data"))  # the repo's Fashion-MNIST
    parser.add_argument("--classifier_dir", default=os.path.join(ROOT, "checkpoints", "classifier_fashion_mnist"))
    parser.add_argument("--out", default="", help="folder for the runs; default: a new temporary folder")
    parser.add_argument("--eval_only", action="store_true", help="measure the runs already in --out")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def parse_recipes(text: str) -> dict[str, list[str]]:
    recipes = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, flags = item.partition("=")
        if not flags and name not in RECIPES:
            raise SystemExit(f"--recipes: unknown recipe {name!r}; known: {', '.join(RECIPES)} (or name=--flags)")
        recipes[name] = shlex.split(flags) if flags else RECIPES[name]
    return recipes


def train_recipe(name: str, flags: list[str], args: argparse.Namespace, root: str) -> float:
    """Runs main.py --train for --minutes. Returns the process's wall time in seconds."""
    command = [sys.executable, os.path.join(ROOT, "main.py"), "--train", "--dataset", "fashion_mnist",
               "--data_dir", args.data_dir, "--input_height", "28", "--output_height", "28", "--epoch", "1000",
               "--max_minutes", str(args.minutes), "--seed", str(args.seed), "--out_name", name,
               "--out_dir", os.path.join(root, "out"), "--checkpoint_dir", os.path.join(root, "checkpoints"),
               "--sample_dir", os.path.join(root, "samples"), *flags]
    print(f"[{name}] {shlex.join(command[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"[{name}] failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    print(f"[{name}] {proc.stdout.strip().splitlines()[-1]} ({seconds:.0f} s)", flush=True)
    return seconds


def measure(name: str, root: str, evaluator, args: argparse.Namespace, seconds: float | None) -> list[dict]:
    """Scores of the run's generator(s): one row, or two (EMA and raw G) for a run trained with --g_ema."""
    checkpoint_dir = os.path.join(root, "checkpoints", name)
    rows = []
    for use_ema in (True, False):
        run = load_run(checkpoint_dir, use_ema=use_ema)
        if not use_ema and run.config.g_ema == 0:
            break
        t0 = time.perf_counter()
        scores = evaluator(run.generator, num_samples=args.num_samples, seed=args.seed)
        label = f"{name} (EMA)" if use_ema and run.config.g_ema else name
        images = run.step * run.config.images_per_step
        rows.append({"recipe": label, "step": run.step, "images": images, "train_s": seconds, **scores})
        print(f"[{label}] step {run.step}: {format_metrics(scores)} ({time.perf_counter() - t0:.0f} s to measure)",
              flush=True)
    return rows


def print_table(rows: list[dict], recipes: dict[str, list[str]]) -> None:
    print("\n| recipe | steps | images | train min | img/s | domain FID | KID | label accuracy |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        minutes = f"{r['train_s'] / 60:.1f}" if r["train_s"] else "-"
        rate = f"{r['images'] / r['train_s']:.0f}" if r["train_s"] else "-"
        print(f"| {r['recipe']} | {r['step']} | {r['images']} | {minutes} | {rate} | {r['fid']:.2f} | "
              f"{r['kid']:.3f} | {100 * r['accuracy']:.1f}% |")
    print()
    for name, flags in recipes.items():
        print(f"{name}: {shlex.join(flags) or '(defaults)'}")


def main() -> None:
    args = parse_args()
    recipes = parse_recipes(args.recipes)
    root = args.out or tempfile.mkdtemp(prefix="recipes_")
    print(f"runs in {root}; {args.minutes:g} minutes each; {args.num_samples} samples per measurement", flush=True)
    timings = {}
    if not args.eval_only:
        for name, flags in recipes.items():
            timings[name] = train_recipe(name, flags, args, root)
    cfg = TrainConfig(dataset="fashion_mnist", data_dir=args.data_dir, input_height=28, output_height=28,
                      classifier_dir=args.classifier_dir).validate()
    evaluator = create_evaluator(cfg, c_dim=1, y_dim=cfg.y_dim)
    rows = []
    for name in recipes:
        rows += measure(name, root, evaluator, args, timings.get(name))
    with open(os.path.join(root, "recipes.json"), "w") as f:
        json.dump({"minutes": args.minutes, "recipes": recipes, "rows": rows}, f, indent=2)
    print_table(rows, recipes)


if __name__ == "__main__":
    main()
