r"""Fill the missing parts of images with a trained DCGAN (semantic inpainting, Yeh et al. 2017).

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
  python complete.py --checkpoint_dir checkpoints/fm_heldout --imgs tests/
  python complete.py --checkpoint_dir checkpoints/fashion_mnist_28x28 --label 7 --imgs shoes/

Outputs go to --out_dir (completions/): one folder per image and summary.json. Every flag is in flags.md.
"""


from absl import app, flags

from dcgan_tf.cli import exit_with

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None, "A trained run's checkpoint folder, e.g. checkpoints/celebA_64x64.")
flags.DEFINE_string("imgs", "", "Images: comma-separated paths, globs or folders (positional paths work too).")
flags.DEFINE_string("out_dir", "completions", "Output folder: one sub-folder per image and summary.json.")
# Masks
flags.DEFINE_string("mask_type", "center", "center, random, left, half, grid, lowres, full, pattern or file.")
flags.DEFINE_float("center_scale", 0.25, "center: missing [l:u] with l = int(S*scale), u = int(S*(1-scale)).")
flags.DEFINE_float("random_fraction", 0.8, "random: fraction of pixel positions missing.")
flags.DEFINE_string("half_side", "random", "half: top, bottom, left, right, or random per image.")
flags.DEFINE_string("mask", "", "file: one mask PNG for every image (white = known), at the model's size.")
flags.DEFINE_string("mask_dir", "", "file: a folder of mask PNGs named like the images.")
flags.DEFINE_integer("lowres_factor", 8, "lowres: compare images averaged over blocks of this size.")
# Loss and optimisation
flags.DEFINE_boolean("weighted_mask", True, "Weight known pixels by the missing fraction of their window.")
flags.DEFINE_integer("window", 7, "Odd window size of --weighted_mask.")
flags.DEFINE_float("lam", 0.1, "Weight of the perceptual (adversarial) loss.")
flags.DEFINE_string("approach", "momentum", "Optimiser of z: momentum or adam.")
flags.DEFINE_float("lr", 0.01, "Learning rate of z.")
flags.DEFINE_float("momentum", 0.9, "momentum: the momentum.")
flags.DEFINE_float("beta1", 0.9, "adam: beta1.")
flags.DEFINE_float("beta2", 0.999, "adam: beta2.")
flags.DEFINE_float("eps", 1e-8, "adam: epsilon.")
flags.DEFINE_integer("n_iter", 1000, "Updates of z.")
flags.DEFINE_integer("num_restarts", 1, "Starting points per image; the lowest final loss wins.")
flags.DEFINE_integer("label", None, "Conditional models: the class of every image; default: choose per image.")
flags.DEFINE_string("class_search", "pilot", "Without --label: pilot (every class for --pilot_iter, then the "
                    "--top_k best in full) or all (every class in full, 10x the time).")
flags.DEFINE_integer("pilot_iter", 0, "Iterations of the pilot of every class; 0 = n_iter // 10.")
flags.DEFINE_integer("top_k", 1, "Classes completed in full after the pilot (1: the pilot decides).")
flags.DEFINE_string("classifier_dir", "", "Classifier of the class prior; default <checkpoints>/classifier_<dataset> "
                    "when present; none = no prior.")
flags.DEFINE_float("prior_weight", 0.2, "Weight of the classifier's log p(class) against log(total loss).")
flags.DEFINE_integer("batch_size", 64, "Images optimised together.")
flags.DEFINE_integer("seed", 0, "Seed of the masks and starting points.")
# Outputs
flags.DEFINE_string("blend", "poisson", "poisson (exact Poisson blending) or none (paste G(z) into the hole).")
flags.DEFINE_integer("out_interval", 0, "Snapshots and a progress GIF every N iterations; 0 = final only.")
flags.DEFINE_boolean("overwrite", False, "Redo images that are already completed in --out_dir.")


def config_from_flags(positional):
    """One validated CompleteConfig from the flags and the positional image paths."""
    from dcgan_tf.complete_cli import CompleteConfig

    names = [f for f in CompleteConfig.__dataclass_fields__ if f != "imgs"]
    imgs = tuple(([FLAGS.imgs] if FLAGS.imgs else []) + list(positional))
    return CompleteConfig(imgs=imgs, **{n: FLAGS[n].value for n in names}).validate()


def run(argv):
    from dcgan_tf.complete_cli import run_completion

    summary = run_completion(config_from_flags(argv[1:]))
    fmt = lambda x, unit="": "n/a" if x is None else f"{x:.3g}{unit}"
    print(f"done: {len(summary['images'])} images in {FLAGS.out_dir}, {len(summary['skipped'])} unreadable; "
          f"mean over the hole: PSNR {fmt(summary['mean_psnr_hole'], ' dB')}, SSIM {fmt(summary['mean_ssim_hole'])}")
    return 0


def main(argv):
    exit_with(run, argv)


if __name__ == "__main__":
    app.run(main)
