"""Benchmark: how label-free completion should choose the class of a conditional model (issue 16).

Completes held-out Fashion-MNIST test images once with every class for the full --n_iter (keeping the losses
of every iteration and G(z) every --n_iter/20 iterations), then scores class-choice rules offline on those
numbers, each with its cost in full single-class optimisations (one given class = 1x):
  all-<term>:      all ten classes for the full run, the lowest final log <term> (contextual, total) wins (10x);
  pilot<t>:        the lowest log total after t iterations of every class; that class then runs in full
                   (10 t / n_iter + 1; a pilot is the first t iterations of the same optimisation);
  pilot<t>+top<k>: full runs for the k best of the pilot, the lowest final loss wins (10 t / n_iter + k);
then, per prior, a table of pilot<t> + w x prior: w * log p(class) subtracted from the log pilot loss, p from
each classifier of --classifiers (the tool's plain one and the --mask_augment one) on: the masked input (hole at
0), the filled input (masks.smooth_fill), each class's own pilot completion (G(z) pasted into the hole), or own
+ k x filled (k 0.25, 0.5 = complete.py's KNOWN_PIXELS_WEIGHT, 1).
The rules are tuned here, on test images the completion benchmark (bench/completion.py, the first images of the
test split) does not use: by default the last --images of the split.

Usage, from the project root:
    python bench/class_choice.py --run checkpoints/fm_heldout [--images 256] [--n_iter 200] [--out raw.npz]
    python bench/class_choice.py --replay raw.npz --classifiers plain=...,masked=...   # other classifiers
"""

import argparse
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain script: find dcgan_tf without installing it

from dcgan_tf.blend import paste  # noqa: E402
from dcgan_tf.class_choice import KNOWN_PIXELS_WEIGHT, known_pixels_log_prior, log_softmax  # noqa: E402
from dcgan_tf.classifier import load_classifier, predict_logits  # noqa: E402
from dcgan_tf.completion import Completer  # noqa: E402
from dcgan_tf.datasets import load_idx  # noqa: E402
from dcgan_tf.masks import make_mask  # noqa: E402
from dcgan_tf.runs import load_run  # noqa: E402

MASKS = (("center", {}), ("random", {"random_fraction": 0.8}))
PILOT_FRACTIONS = (0.05, 0.1, 0.2)
PRIOR_WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
KNOWN_WEIGHTS = (0.25, KNOWN_PIXELS_WEIGHT, 1.0)  # the known-pixels prior's share against the own completion's


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="", help="a conditional run trained with --idx_split train")
    parser.add_argument("--data_dir", default=str(ROOT / "data"))  # the repo's Fashion-MNIST
    parser.add_argument("--classifiers", default=",".join(
        f"{name}={ROOT / 'checkpoints' / ('classifier_fashion_mnist' + suffix)}"
        for name, suffix in (("plain", ""), ("masked", "_masked"))), help="name=folder,... of the classifiers "
        "whose priors are compared (python -m dcgan_tf.classifier, with and without --mask_augment)")
    parser.add_argument("--images", type=int, default=256, help="the last N test images")
    parser.add_argument("--n_iter", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--out", default="", help="save the raw arrays to this .npz")
    parser.add_argument("--replay", default="", help="an .npz saved with --out: score its losses and snapshots "
                        "(kept in float16) with --classifiers instead of completing again")
    return parser.parse_args()


def all_class_run(completer, images, masks, n_iter):
    """Per class: total and contextual losses [N, n_iter + 1] and G(z) snapshots [T, N, H, W, C]."""
    every = max(1, n_iter // 20)
    out = {"total": [], "contextual": [], "snapshots": []}
    for c in range(completer.y_dim):
        result = completer(images, masks, np.full(len(images), c), seeds=range(len(images)), n_iter=n_iter,
                           snapshot_every=every)
        out["total"].append(result.losses["total"])
        out["contextual"].append(result.losses["contextual"])
        out["snapshots"].append(result.snapshots)
    steps = np.asarray(result.snapshot_steps)
    # [N, C, n_iter + 1] losses, [C, T, N, H, W, C] snapshots
    return np.stack(out["total"], 1), np.stack(out["contextual"], 1), np.stack(out["snapshots"]), steps


def self_scores(classify, images, masks, generated):
    """[N, C] log p(c | known pixels + G(z) of class c in the hole); generated [C, N, H, W, C]."""
    return np.stack([log_softmax(classify(paste(images, g, masks)))[:, c] for c, g in enumerate(generated)], 1)


def named_priors(classifiers, images, masks, snaps, steps, saved=None):
    """name -> (iteration -> [N, C] log-probabilities) for `pilot_table`, for each classifier (name -> classify):
    the classifier on the masked input, on the filled input, on each class's completion at that iteration, and
    that completion + k x the filled input for k in KNOWN_WEIGHTS and every pair of classifiers (complete.py's
    rule is own + filled/2 from one classifier). With `saved`, the filled and own log-probabilities go there."""
    filled, own = {}, {}
    priors = {}
    for name, classify in classifiers.items():
        masked = log_softmax(classify(images * masks))
        filled[name] = known_pixels_log_prior(classify, images, masks)
        own[name] = {int(t): self_scores(classify, images, masks, snaps[:, j]) for j, t in enumerate(steps)}
        if saved is not None:  # the raw log-probabilities, to try other combinations offline
            saved[f"filled_{name}"] = filled[name]
            saved[f"own_{name}"] = np.stack([own[name][int(t)] for t in steps])  # [T, N, C]
        priors[f"masked[{name}]"] = lambda t, p=masked: p
        priors[f"filled[{name}]"] = lambda t, p=filled[name]: p
        priors[f"own[{name}]"] = lambda t, p=own[name]: p[t]
    for a in classifiers:
        for b in classifiers:
            for k in KNOWN_WEIGHTS:
                priors[f"own[{a}]+filled[{b}]x{k:g}"] = lambda t, a=a, b=b, k=k: own[a][t] + k * filled[b]
    return priors


def pilot_table(total, priors, labels, n_iter, pilot_fraction=0.1):
    """Rows "| prior | accuracy at each weight |" of the rule pilot + w x prior (2x), lowest score wins."""
    t = max(1, int(round(n_iter * pilot_fraction)))
    rows = [f"| prior (pilot {t}, then the best class in full: 2x) | "
            + " | ".join(f"w {w:g}" for w in PRIOR_WEIGHTS) + " | prior alone |",
            "| --- " * (len(PRIOR_WEIGHTS) + 2) + "|"]
    for kind, prior in priors.items():
        accs = [np.mean(np.argmin(np.log(total[:, :, t]) - w * prior(t), 1) == labels) for w in PRIOR_WEIGHTS]
        alone = np.mean(np.argmax(prior(t), 1) == labels)
        rows.append(f"| {kind} | " + " | ".join(f"{a:.3f}" for a in accs) + f" | {alone:.3f} |")
    return "\n".join(rows)


def rules(total, contextual, n_iter, k_max=3):
    """name -> (chosen classes [N], cost in full runs), by the losses alone."""
    table = {}
    table["all-total"] = (np.argmin(total[:, :, -1], 1), 10.0)
    table["all-contextual"] = (np.argmin(contextual[:, :, -1], 1), 10.0)
    for frac in PILOT_FRACTIONS:
        t = max(1, int(round(n_iter * frac)))
        table[f"pilot{t}"] = (np.argmin(total[:, :, t], 1), 10 * t / n_iter + 1)  # + the chosen class in full
        order = np.argsort(total[:, :, t], 1)
        for k in range(2, k_max + 1):
            top = order[:, :k]
            final = np.take_along_axis(total[:, :, -1], top, 1)
            table[f"pilot{t}+top{k}"] = (top[np.arange(len(top)), np.argmin(final, 1)], 10 * t / n_iter + k)
    return table


def main():
    args = parse_args()
    if not (args.run or args.replay):
        sys.exit("give --run (a conditional run trained with --idx_split train) or --replay (a saved .npz)")
    images, labels = load_idx("fashion_mnist", args.data_dir, "test")
    images = images[-args.images:].astype(np.float32) / 127.5 - 1.0
    labels = labels[-args.images:]
    classifiers = {}
    for item in args.classifiers.split(","):
        name, path = item.split("=")
        model = load_classifier(path)
        classifiers[name] = lambda x, m=model: predict_logits(m, x)
    replay = np.load(args.replay) if args.replay else None
    if replay is not None and not np.array_equal(replay["labels"], labels):
        sys.exit(f"{args.replay} was saved for other images: give the same --images")
    completer = None
    if replay is None:  # compiled once for all classes and mask types
        run = load_run(args.run)
        completer = Completer(run.generator, run.discriminator, batch_size=args.batch_size, z_dim=run.config.z_dim,
                              y_dim=run.y_dim, z_dist=run.config.z_dist, loss=run.config.loss)
    saved = {}
    for mask_type, kwargs in MASKS:
        if replay is None:
            rng = np.random.default_rng(1)
            masks = np.stack([make_mask(mask_type, 28, 28, rng=rng, **kwargs) for _ in images])
            start = time.time()
            total, contextual, snaps, steps = all_class_run(completer, images, masks, args.n_iter)
            print(f"{mask_type}: all classes x {args.n_iter} iterations in {time.time() - start:.0f}s", flush=True)
        else:
            total, contextual, masks, steps, snaps = (replay[f"{mask_type}_{k}"] for k in (
                "total", "contextual", "masks", "steps", "snapshots"))
            snaps = snaps.astype(np.float32)
        raw = {}
        priors = named_priors(classifiers, images, masks, snaps, steps, raw)
        saved.update({f"{mask_type}_{k}": v for k, v in raw.items()})
        saved.update({f"{mask_type}_total": total, f"{mask_type}_contextual": contextual,
                      f"{mask_type}_masks": masks, f"{mask_type}_steps": steps,
                      f"{mask_type}_snapshots": snaps.astype(np.float16)})  # [C, T, N, H, W, 1]
        print(f"| {mask_type}: rule by the losses alone | class accuracy | cost (x one class) |\n| --- | --- | --- |")
        for name, (chosen, cost) in rules(total, contextual, args.n_iter).items():
            print(f"| {name} | {np.mean(chosen == labels):.3f} | {cost:.1f} |")
        for frac in PILOT_FRACTIONS:
            print(pilot_table(total, priors, labels, args.n_iter, frac))
        for k in (1, 2, 3):
            recall = [np.mean((np.argsort(total[:, :, t], 1)[:, :k] == labels[:, None]).any(1)) for t in steps]
            print(f"true class among the {k} lowest totals at {steps.tolist()}: {np.round(recall, 3).tolist()}")
    if args.out:
        np.savez_compressed(args.out, labels=labels, **saved)  # losses, masks, priors of each mask type


if __name__ == "__main__":
    main()
