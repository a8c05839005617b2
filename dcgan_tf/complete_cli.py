"""Everything `complete.py` does besides parsing flags: finding images and masks, batches, files, summary.json.

`run_completion(cfg)` loads the run from `--checkpoint_dir` (of a folder of runs, the newest of those that fit the
images best: `choose_run`), prepares each image exactly as training did
(data.load_image with the run's size, crop and channels), draws or reads its mask, completes the images
batch by batch with one compiled `Completer` (`Completer.complete`, the function behind
`dcgan_tf.load_run(...).complete`: it blends, keeps the known pixels and scores), and writes per image, into
`<out_dir>/<name>/`:
  input.png, masked.png, mask.png (white = known), generated.png (G(z*)), completion.png,
  losses.csv (contextual, perceptual, total per iteration), result.json (written last: the image is done),
  and with --out_interval K: snapshots/{generated,completion}_<iter>.png every K iterations and progress.gif.
`<name>` is the file's stem, with a hash of its path added when two inputs share a stem. `summary.json` holds
the settings, each image's final losses and hole scores, and the images that could not be read; it is
rewritten atomically after every batch. A re-run skips images whose result.json exists (unless --overwrite)
and refuses an --out_dir made with different settings.

Scores: PSNR over the hole's pixels, and SSIM as the per-pixel SSIM map (11x11 Gaussian window) averaged
over the hole's pixels; a mask with no missing pixel (`full`, `lowres`) makes the whole image the "hole": the
output is G(z) (completion.default_keep).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import zlib

import numpy as np
from absl import logging
from PIL import Image

from dcgan_tf.atomic import write_json_atomic, write_text_atomic
from dcgan_tf.class_prior import load_classify, trained_on_holes
from dcgan_tf.completion import LOSS_NAMES, Completer, image_seeds
from dcgan_tf.config import CompleteConfig
from dcgan_tf.decode import detect_channels, displayed_size, load_image
from dcgan_tf.errors import DcganError, FlagError
from dcgan_tf.images import as_written, make_grid, save_gif, save_image
from dcgan_tf.masks import (
    check_mask_size,
    context_pool,
    make_mask,
    mask_from_array,
    masked_view,
    read_mask_file,
)
from dcgan_tf.progress import ProgressBar
from dcgan_tf.runs import find_run, load_run

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
@dataclasses.dataclass
class Item:
    """One input image on its way through a batch."""

    path: str
    name: str  # output folder name
    image: np.ndarray | None = None  # [H, W, C] in [-1, 1]
    known: np.ndarray | None = None  # [H, W, 1], 1 = known

    @property
    def key(self) -> int:
        """A stable number for this image's random draws (its mask and starting z)."""
        return zlib.crc32(self.name.encode())


# ---------------------------------------------------------------------------------------------------------
# Inputs: image paths, output names, masks.

def resolve_image_paths(args) -> list[str]:
    """Expands comma lists, globs and folders into image files, in order, without repeats.

    Args:
      args: strings from --imgs (comma lists allowed) and the positional arguments.

    Returns:
      the paths; a path that does not exist is kept (it is reported as unreadable).
    """
    paths, seen = [], set()
    for arg in args:
        for item in (p.strip() for p in arg.split(",")):
            if not item:
                continue
            if os.path.isdir(item):
                found = sorted(os.path.join(item, f) for f in os.listdir(item)
                               if f.lower().endswith(IMAGE_EXTENSIONS))
            else:
                found = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
            for path in found:
                if os.path.abspath(path) not in seen:
                    seen.add(os.path.abspath(path))
                    paths.append(path)
    return paths


def output_names(paths: list[str]) -> list[str]:
    """Each file's stem; stems shared by several inputs get `-<hash of the path>` so no output is shared."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    counts = {s: stems.count(s) for s in stems}
    return [s if counts[s] == 1 else f"{s}-{hashlib.sha1(os.path.abspath(p).encode()).hexdigest()[:8]}"
            for s, p in zip(stems, paths)]


def _image_loader(run):
    """load_image with the run's settings: the same size, crop and channels as in training.

    A run trained with --crop takes images that are already at its output size as they are (bamos completed
    64x64 aligned faces with a model trained on 108-pixel crops) and logs it; others are cropped as in training.
    """
    cfg = run.config
    out_size = (cfg.output_width, cfg.output_height)

    def load(path: str, c_dim: int = run.c_dim) -> np.ndarray:
        crop = cfg.crop and _image_size(path) != out_size
        if cfg.crop and not crop and c_dim == run.c_dim:  # masks at the image's size are loaded quietly
            logging.info("%s is already %dx%d, the model's output size: used as it is, without the %dx%d crop",
                         path, cfg.output_height, cfg.output_width, cfg.input_height, cfg.input_width or
                         cfg.input_height)
        return load_image(path, c_dim=c_dim, output_height=cfg.output_height, output_width=cfg.output_width,
                          crop=crop, input_height=cfg.input_height, input_width=cfg.input_width)

    return load


def _image_size(path: str) -> tuple[int, int] | None:
    """decode.displayed_size, or None when unreadable (load_image then reports the file, naming it)."""
    try:
        return displayed_size(path)
    except Exception:
        return None


def find_mask_file(mask_dir: str, item: Item) -> str:
    """`<mask_dir>/<name>.png`, `<stem>.png` or the image's own file name; DcganError if none exists."""
    base = os.path.basename(item.path)
    candidates = [f"{item.name}.png", f"{os.path.splitext(base)[0]}.png", base]
    for candidate in candidates:
        if os.path.isfile(os.path.join(mask_dir, candidate)):
            return os.path.join(mask_dir, candidate)
    raise DcganError(f"no mask for {item.path} in --mask_dir {mask_dir} (looked for {', '.join(candidates)})")


def load_own_mask(path: str, item: Item, load, height: int, width: int) -> np.ndarray:
    """A per-image mask at the model's size, or at its image's size (then cropped and resized like it)."""
    mask = read_mask_file(path)
    if mask.shape[:2] == (height, width):
        return mask
    with Image.open(item.path) as image:
        image_size = image.size
    if (mask.shape[1], mask.shape[0]) != image_size:
        raise DcganError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image {item.path} is "
                         f"{image_size[0]}x{image_size[1]} and the model works on {width}x{height}: use either size")
    return mask_from_array(np.rint((load(path, c_dim=1)[..., 0] + 1.0) * 127.5))


def mask_for(item: Item, cfg: CompleteConfig, shared_mask, load, height: int, width: int) -> np.ndarray:
    """The known mask [H, W, 1] of one image: the shared file, its own file, or drawn from its seed."""
    if shared_mask is not None:
        return shared_mask
    if cfg.mask_type == "file":
        return load_own_mask(find_mask_file(cfg.mask_dir, item), item, load, height, width)
    return draw_mask(cfg, item.key, height, width)


def draw_mask(cfg: CompleteConfig, key: int, height: int, width: int) -> np.ndarray:
    """The --mask_type mask [H, W, 1] of the image keyed `key`, drawn from (--seed, key) (every type but file)."""
    rng = np.random.default_rng([cfg.seed, key])
    return make_mask(cfg.mask_type, height, width, rng=rng, center_scale=cfg.center_scale,
                     random_fraction=cfg.random_fraction, half_side=cfg.half_side)


def iter_batches(items: list[Item], cfg: CompleteConfig, run, skipped: list, shared_mask):
    """Yields lists of up to batch_size loaded Items; unreadable images go to `skipped` and the log."""
    load = _image_loader(run)
    batch = []
    for item in items:
        try:
            item.image = load(item.path)
        except DcganError as e:
            logging.warning("skipping %s", e)  # the message names the file
            skipped.append({"path": item.path, "error": str(e)})
            continue
        item.known = mask_for(item, cfg, shared_mask, load, run.config.output_height, run.config.output_width)
        batch.append(item)
        if len(batch) == cfg.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------------------
# Outputs.

def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def save_losses_csv(path: str, losses: dict) -> None:
    """iteration,contextual,perceptual,total; row t is the loss at z before update t, the last row the final z."""
    rows = ["iteration," + ",".join(LOSS_NAMES)]
    rows += [f"{t}," + ",".join(f"{losses[k][t]:.6g}" for k in LOSS_NAMES) for t in range(len(losses["total"]))]
    write_text_atomic(path, "\n".join(rows) + "\n")


def save_snapshots(folder: str, item: Item, steps, generated, completions) -> None:
    """snapshots/generated_<iter>.png and completion_<iter>.png, and progress.gif: G(z) | completion over a
    strip that fills up with the iterations done."""
    frames = []
    for step, gen, comp in zip(steps, generated, completions):
        save_image(gen, os.path.join(folder, "snapshots", f"generated_{step:06d}.png"))
        save_image(comp, os.path.join(folder, "snapshots", f"completion_{step:06d}.png"))
        frame = make_grid(np.stack([gen, comp]), cols=2, pad=1)  # [H, 2W + 1, C] uint8
        scale = max(1, 128 // item.image.shape[0])
        frame = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
        strip = np.zeros((4,) + frame.shape[1:], np.uint8)
        strip[:, :round(frame.shape[1] * step / max(steps[-1], 1))] = 255
        frames.append(np.concatenate([frame, strip]))
    save_gif(frames, os.path.join(folder, "progress.gif"), duration_ms=150)


def class_choice_record(result, i: int) -> dict | None:
    """Image i's label-free class choice: the chosen class and the runner-up with their final losses, and
    every class's total after the pilot (None for a given --label or an unconditional model). With --top_k 1
    (the default) the pilot decides and only the chosen class is run in full: the runner-up's losses are then
    its pilot total alone (contextual and perceptual null)."""
    if result.runner_up[i] < 0:
        return None
    losses = lambda d: {k: _finite(float(v[i])) for k, v in d.items()}
    pilot = [_finite(float(x)) for x in result.pilot_losses[i]]
    return {"chosen": int(result.labels[i]), "chosen_losses": losses(result.final_losses),
            "runner_up": int(result.runner_up[i]), "runner_up_losses": losses(result.runner_up_losses),
            "pilot_total": pilot if any(x is not None for x in pilot) else None}


def finish_item(item: Item, i: int, result, cfg: CompleteConfig, pool: int) -> dict:
    """Writes one image's files from the batch's Completion (blended and scored by Completer.complete);
    result.json goes last. Returns the image's record."""
    folder = os.path.join(cfg.out_dir, item.name)
    completion = as_written(result.images[i])  # what completion.png holds, which the scores are of
    save_image(item.image, os.path.join(folder, "input.png"))
    save_image(masked_view(item.image, item.known, pool), os.path.join(folder, "masked.png"))
    save_image(item.known * 2.0 - 1.0, os.path.join(folder, "mask.png"))
    save_image(result.generated[i], os.path.join(folder, "generated.png"))
    save_image(completion, os.path.join(folder, "completion.png"))
    losses = {k: v[i] for k, v in result.losses.items()}
    save_losses_csv(os.path.join(folder, "losses.csv"), losses)
    if cfg.out_interval:
        save_snapshots(folder, item, result.snapshot_steps, result.snapshots[:, i], result.snapshot_images[:, i])
    hole = 1.0 - result.keep[i]  # the pixels taken from G(z): the whole image for full and lowres
    record = {"source": os.path.abspath(item.path), **{k: float(v[-1]) for k, v in losses.items()},
              "psnr_hole": _finite(float(result.psnr[i])), "ssim_hole": _finite(float(result.ssim[i])),
              "hole_fraction": float(hole.mean()), "label": None if result.labels[i] < 0 else int(result.labels[i]),
              "restart": int(result.restarts[i]), "class_choice": class_choice_record(result, i)}
    write_json_atomic(os.path.join(folder, "result.json"), record)
    return record


def finished_record(cfg: CompleteConfig, item: Item) -> dict | None:
    """The result.json of an earlier run of this very file, or None when it must be (re)done."""
    path = os.path.join(cfg.out_dir, item.name, "result.json")
    if cfg.overwrite or not os.path.isfile(path):
        return None
    with open(path) as f:
        record = json.load(f)
    return record if record.get("source") == os.path.abspath(item.path) else None


def open_summary(cfg: CompleteConfig, settings: dict) -> dict:
    """The summary to extend: a fresh one, or the existing summary.json when its settings match."""
    path = os.path.join(cfg.out_dir, "summary.json")
    if os.path.isfile(path) and not cfg.overwrite:
        with open(path) as f:
            old = json.load(f)
        for key, value in settings.items():
            if old.get("settings", {}).get(key) != value:
                raise FlagError(key if key in dataclasses.asdict(cfg) else "checkpoint_dir",
                                f"is {value!r} but the completions in {cfg.out_dir} were made with "
                                f"{old.get('settings', {}).get(key)!r}; use another --out_dir or --overwrite")
    return {"settings": settings, "images": {}, "skipped": [],
            "scores": "psnr_hole: PSNR (dB, [0, 1] pixels) over hole pixels; ssim_hole: SSIM map (11x11 Gaussian) "
                      "averaged over hole pixels; full/lowres: the whole image"}


def write_summary(cfg: CompleteConfig, summary: dict) -> None:
    """summary.json with the mean scores of the completed images, written atomically."""
    records = list(summary["images"].values())
    for key in ("psnr_hole", "ssim_hole", "total"):
        values = [r[key] for r in records if r.get(key) is not None]
        summary[f"mean_{key}"] = float(np.mean(values)) if values else None
    os.makedirs(cfg.out_dir, exist_ok=True)
    write_json_atomic(os.path.join(cfg.out_dir, "summary.json"), summary)


# ---------------------------------------------------------------------------------------------------------
# The orchestrator.

def create_completer(cfg: CompleteConfig, run, batch_size: int) -> Completer:
    """A Completer with the run's networks and settings and this command's hyperparameters."""
    return Completer(run.generator, run.discriminator, batch_size=batch_size, z_dim=run.config.z_dim,
                     y_dim=run.y_dim, z_dist=run.config.z_dist, loss=run.config.loss, lam=cfg.lam,
                     approach=cfg.approach, lr=cfg.lr, momentum=cfg.momentum, beta1=cfg.beta1, beta2=cfg.beta2,
                     eps=cfg.eps, weighted_mask=cfg.weighted_mask, window=cfg.window,
                     pool=context_pool(cfg.mask_type, cfg.lowres_factor))


def load_checked_run(cfg: CompleteConfig, paths: list[str] = ()):
    """load_run of the run `--checkpoint_dir` names (itself, or the run in it that best fits the images at
    `paths`, see choose_run), --label checked."""
    folder = choose_run(cfg.checkpoint_dir, paths)
    run = load_run(folder)
    if cfg.label is not None and not run.y_dim:
        raise FlagError("label", f"the model in {folder} is not conditional; leave --label out")
    if cfg.label is not None and not 0 <= cfg.label < run.y_dim:
        raise FlagError("label", f"must be a class in [0, {run.y_dim}), got {cfg.label}")
    return run


def image_facts(paths: list[str]) -> tuple[int, set]:
    """The images' channels as training would read them (decode.detect_channels: 1 or 3) and their (width,
    height) sizes; unreadable files are left out (they are reported when loaded)."""
    sizes = {size for size in map(_image_size, paths) if size is not None}
    return detect_channels(paths), sizes


def misfits(flags: dict, channels: int, sizes: set) -> list[str]:
    """How a run (its FLAGS.json) does not fit images with `channels` and `sizes` (image_facts); [] = it fits.

    The size fits when every image is at the run's output size, or, for a run trained on centre crops, at least
    as large as the crop (other images are resized, or skipped as smaller than the crop).
    """
    out = (int(flags["output_width"]), int(flags["output_height"]))
    crop = (int(flags["input_width"] or flags["input_height"]), int(flags["input_height"])) if flags.get("crop") \
        else None
    size_fits = lambda w, h: (w, h) == out or (crop is not None and w >= crop[0] and h >= crop[1])
    channel_words = lambda c: f"{c} channel" + ("s" if c != 1 else "")
    found = [] if int(flags["c_dim"]) == channels else [
        f"{channel_words(int(flags['c_dim']))}, the images have {channels}"]
    if not all(size_fits(*size) for size in sizes):
        rule = f"{out[0]}x{out[1]} images" + (f" or at least its {crop[0]}x{crop[1]} crop" if crop else "")
        found.append(f"made for {rule}")
    return found


def choose_run(checkpoint_dir: str, paths: list[str]) -> str:
    """runs.find_run preferring runs whose channels and size fit the images; with several runs the choice and
    the other candidates are logged at WARNING, with the flag that picks one."""
    facts = image_facts(paths) if paths else None
    fit = lambda run: [] if facts is None else misfits(run.flags, *facts)
    folder, runs = find_run(checkpoint_dir, prefer=lambda run: -len(fit(run)))
    if not runs:
        return folder
    if len(runs) == 1:
        logging.info("using the run in %s: %s", checkpoint_dir, folder)
        return folder
    describe = lambda run: f"{run.path} ({'; '.join(fit(run)) or 'fits the images'})"
    chosen = next(run for run in runs if run.path == folder)
    others = sorted((run for run in runs if run.path != folder), key=lambda run: -run.written)
    logging.warning("%d runs in %s; using %s, the most recently written of those that fit best; the others: %s. "
                    "Pick one with --checkpoint_dir", len(runs), checkpoint_dir, describe(chosen),
                    ", ".join(map(describe, others)))
    return folder


def shared_mask_of(cfg: CompleteConfig, run):
    """The --mask PNG as a [H, W, 1] mask at the model's size, or None."""
    if not cfg.mask:
        return None
    return check_mask_size(read_mask_file(cfg.mask), cfg.mask, run.config.output_height, run.config.output_width)


def create_classify(cfg: CompleteConfig, run):
    """The classifier (images -> logits) that guides a label-free conditional completion, and its path;
    (None, None) when none applies or none is found."""
    if not run.y_dim or cfg.label is not None or not cfg.prior_weight:
        return None, None
    if (run.config.output_height, run.config.output_width, run.c_dim) != (28, 28, 1):
        if cfg.classifier_dir not in ("", "none"):
            raise FlagError("classifier_dir", "the tool's classifier reads 28x28 grey images; this run makes "
                                              f"{run.config.output_height}x{run.config.output_width}x{run.c_dim}")
        return None, None
    classify, path = load_classify(cfg.classifier_dir, run.checkpoint_dir, run.config.dataset)  # find_run's run
    hint = f"`python -m dcgan_tf.classifier --dataset {run.config.dataset} --mask_augment 0.8 --epochs 30`"
    if path is None:
        if cfg.classifier_dir != "none":
            logging.warning("no classifier next to the run: the class is chosen by the loss alone; train one with "
                            "%s", hint)
    elif trained_on_holes(path):
        logging.info("class prior: %s", path)
    else:
        logging.info("class prior: %s; one trained with %s chooses better", path, hint)
    return classify, path


def complete_batch(completer: Completer, batch: list[Item], cfg: CompleteConfig, title: str, classify=None):
    """Completes, blends and scores one batch with a progress bar: Completer.complete, the function that
    `dcgan_tf.load_run(...).complete` runs (classify: see create_classify). Returns the Completion."""
    bar = {}

    def on_progress(done, total, loss):
        bar.setdefault("bar", ProgressBar(total, prefix=title, every_s=5.0)).update(done, {"loss": loss})

    labels = None if cfg.label is None else np.full(len(batch), cfg.label)
    images, masks = np.stack([it.image for it in batch]), np.stack([it.known for it in batch])
    return completer.complete(images, masks, labels, blend=cfg.blend, originals=images, classify=classify,
                              seeds=image_seeds(cfg.seed, [item.key for item in batch]), n_iter=cfg.n_iter,
                              num_restarts=cfg.num_restarts, snapshot_every=cfg.out_interval,
                              on_progress=on_progress, class_search=cfg.class_search,
                              pilot_iter=cfg.pilot_iter or None, top_k=cfg.top_k, prior_weight=cfg.prior_weight)


def split_finished(cfg: CompleteConfig, paths: list[str], summary: dict) -> list[Item]:
    """Items still to do; finished ones (their result.json names this file) go straight into the summary."""
    todo = []
    for item in (Item(p, n) for p, n in zip(paths, output_names(paths))):
        record = finished_record(cfg, item)
        if record is None:
            todo.append(item)
        else:
            summary["images"][item.name] = record
    if cfg.mask_dir:
        for item in todo:
            find_mask_file(cfg.mask_dir, item)  # every mask present before any work
    return todo


def run_completion(cfg: CompleteConfig) -> dict:
    """Completes every image of `cfg.imgs` into `cfg.out_dir` (see the module docstring).

    Returns:
      the summary written to summary.json.
    """
    cfg.validate()
    paths = resolve_image_paths(cfg.imgs)
    run = load_checked_run(cfg, paths)
    if not paths:
        raise FlagError("imgs", f"no images matched {', '.join(cfg.imgs) or '(nothing given)'}")
    classify, classifier = create_classify(cfg, run)
    summary = open_summary(cfg, {**cfg.result_settings(), "checkpoint": os.path.abspath(run.checkpoint_path),
                                 "classifier": classifier and os.path.abspath(classifier)})
    todo = split_finished(cfg, paths, summary)
    shared_mask = shared_mask_of(cfg, run)
    write_summary(cfg, summary)  # the settings go to summary.json before any image is done
    logging.info("%d images, %d already done in %s", len(paths), len(paths) - len(todo), cfg.out_dir)
    completer = create_completer(cfg, run, min(cfg.batch_size, max(1, len(todo))))  # no rows wasted on few images
    pool = context_pool(cfg.mask_type, cfg.lowres_factor)
    n_batches = math.ceil(len(todo) / cfg.batch_size)
    for b, batch in enumerate(iter_batches(todo, cfg, run, summary["skipped"], shared_mask)):
        result = complete_batch(completer, batch, cfg, f"batch {b + 1}/{n_batches} ", classify)
        for i, item in enumerate(batch):
            summary["images"][item.name] = finish_item(item, i, result, cfg, pool)
        write_summary(cfg, summary)
    write_summary(cfg, summary)
    if not summary["images"]:
        raise DcganError(f"none of the {len(paths)} images could be read (see {cfg.out_dir}/summary.json)")
    return summary
