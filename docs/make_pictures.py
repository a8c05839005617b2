"""Writes the README's pictures of a trained run: one small PNG or GIF per mode of `main.py` without --train.

Give it the run's flags, as to main.py (the architecture flags must match its FLAGS.json):
  python docs/make_pictures.py --dataset fashion_mnist --data_dir ../shared/data --input_height 28 \
      --output_height 28 --out_dir /tmp/fm/out --checkpoint_dir /tmp/fm/ck --sample_dir /tmp/fm/s
It writes into docs/ (or --pictures_dir) with few steps and dimensions so every file stays under 200 KB:
  generate_grid.png        --generate_test_images (the grid), also --visualize --option 0
  option1_sweep.png        --option 1, one dimension
  option2_random_dim.gif   --option 2, one random dimension
  option3_center_dim.gif   --option 3, one dimension
  option4_all_dims.gif     --option 4, the first 16 dimensions (class 0 of a conditional model)
  option5_slerp.png/.gif   --option 5 --interpolation slerp; option5_linear.png for comparison
"""

import os
import shutil
import sys
import tempfile

from absl import app, flags

DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(DOCS))

import main  # noqa: E402  (defines the run's flags)
from dcgan_tf import visualize as vis  # noqa: E402
from dcgan_tf.config import RunPaths  # noqa: E402
from dcgan_tf.errors import DcganError  # noqa: E402
from dcgan_tf.runs import load_run  # noqa: E402
from dcgan_tf.sampling import Sampler, save_random_grid  # noqa: E402

flags.DEFINE_string("pictures_dir", DOCS, "Where the pictures go.")
flags.DEFINE_integer("pictures_steps", 8, "Values per sweep and interpolation in the pictures.")
FLAGS = flags.FLAGS
MAX_BYTES = 200_000


def make_pictures(sampler: Sampler, out_dir: str, *, steps: int = 8, seed: int = 0) -> list[str]:
    """Writes one small picture per mode into out_dir. Returns their paths."""
    dims = list(range(min(16, sampler.z_dim)))
    one_class = 0 if sampler.y_dim else None  # a row per class would make option 4's GIF ten times larger
    with tempfile.TemporaryDirectory() as tmp:
        made = {
            "generate_grid.png": save_random_grid(sampler, os.path.join(tmp, "grid.png"),
                                                  n=4 * (sampler.y_dim or 10), seed=seed),
            "option1_sweep.png": vis.save_dimension_sweeps(sampler, tmp, steps=steps, seed=seed, dims=[0])[0],
            "option2_random_dim.gif": vis.save_random_dimension_gifs(sampler, tmp, steps=steps, seed=seed,
                                                                     count=1)[0],
            "option3_center_dim.gif": vis.save_dimension_gifs(sampler, tmp, steps=steps, dims=[0])[0],
            "option4_all_dims.gif": vis.save_merged_sweep_gif(sampler, tmp, steps=steps, dims=dims,
                                                               label=one_class)[0],
        }
        slerp_png, slerp_gif = vis.save_interpolation(sampler, tmp, steps=steps, seed=seed, method="slerp", rows=4)
        linear_png, _ = vis.save_interpolation(sampler, tmp, steps=steps, seed=seed, method="linear", rows=4)
        made.update({"option5_slerp.png": slerp_png, "option5_slerp.gif": slerp_gif,
                     "option5_linear.png": linear_png})
        os.makedirs(out_dir, exist_ok=True)
        return [shutil.copyfile(src, os.path.join(out_dir, name)) for name, src in made.items()]


def run(_argv):
    cfg = main.config_from_flags()
    trained = load_run(RunPaths.from_config(cfg).checkpoint_dir, cfg)
    paths = make_pictures(Sampler.from_run(trained, cfg.batch_size), FLAGS.pictures_dir, steps=FLAGS.pictures_steps,
                          seed=cfg.seed)
    for path in paths:
        size = os.path.getsize(path)
        print(f"{path}: {size / 1000:.0f} KB{'  (over 200 KB: use fewer --pictures_steps)' * (size > MAX_BYTES)}")


def entry(argv):
    try:
        run(argv)
    except DcganError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(entry)
