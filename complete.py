r"""Fill the missing parts of images with a trained DCGAN (semantic inpainting, Yeh et al. 2017).

With a run under --checkpoint_dir (default checkpoints/; of the runs that fit the images, the newest), as bamos:
  python complete.py --imgs aligned/*
Complete the centres of aligned images with a trained run (its checkpoint folder holds FLAGS.json; image
size, channels, crop, z and the model come from there):
  python complete.py --checkpoint_dir checkpoints/celebA_64x64 --imgs aligned/*
80% of the pixels missing, Adam, snapshots every 50 iterations and a GIF of the progress:
  python complete.py --checkpoint_dir checkpoints/celebA_64x64 --mask_type random --random_fraction 0.8 \
      --approach adam --out_interval 50 --imgs "aligned/*.png"
Your own masks (white = known), one per image, named like the images:
  python complete.py --checkpoint_dir checkpoints/celebA_64x64 --mask_type file --mask_dir masks/ photos/*.jpg
A conditional model (Fashion-MNIST) chooses each image's class unless --label is given (a short pilot of every
class, ranked with the tool's classifier as a prior, then the best one in full: 2x the time of --label):
  python complete.py --checkpoint_dir checkpoints/fm_heldout --imgs held_out/
  python complete.py --checkpoint_dir checkpoints/fashion_mnist_28x28 --label 7 --imgs shoes/

Outputs go to --out_dir (completions/): one folder per image and summary.json. Every flag is in flags.md.
"""


from absl import flags

from dcgan_tf.cli import define_flags, exit_with, flag_values, start
from dcgan_tf.config import CompleteConfig

FLAGS = flags.FLAGS
define_flags(CompleteConfig, exclude=("imgs",))
flags.DEFINE_string("imgs", "", CompleteConfig.__dataclass_fields__["imgs"].metadata["help"])  # a tuple field


def config_from_flags(positional):
    """One validated CompleteConfig from the flags and the positional image paths."""
    imgs = tuple(([FLAGS.imgs] if FLAGS.imgs else []) + list(positional))
    return CompleteConfig(imgs=imgs, **flag_values(CompleteConfig, exclude=("imgs",))[0]).validate()


def run(argv):
    from dcgan_tf.complete_cli import run_completion

    summary = run_completion(config_from_flags(argv[1:]))
    fmt = lambda x, unit="": "n/a" if x is None else f"{x:.3g}{unit}"
    print(f"done: {len(summary['images'])} images in {FLAGS.out_dir}, {len(summary['skipped'])} unreadable; "
          f"mean over the hole: PSNR {fmt(summary['mean_psnr_hole'], ' dB')}, SSIM {fmt(summary['mean_ssim_hole'])}")
    return 0


def main(argv):
    """absl's main: `run`, with a user error (or a boolean flag's value written as a word) as one line and exit
    code 2; other words are image paths."""
    exit_with(run, argv, takes_words=True)


if __name__ == "__main__":
    start(main)
