r"""Train a DCGAN, or use a trained one.

Train on a folder of images (`--data_dir/--dataset`, sub-folders too):
  python main.py --dataset faces --input_height 96 --output_height 48 --crop --train --epoch 300 \
      --input_fname_pattern "*.jpg"
Train the conditional model on Fashion-MNIST (idx files in --data_dir, Debian's package or tfds):
  python main.py --dataset fashion_mnist --data_dir ../shared/data --input_height 28 --output_height 28 --train
Watch it:
  tensorboard --logdir out/
Train on every GPU of this machine (--batch_size is the global batch; README "Scaling out"):
  python main.py --dataset celebA --train --strategy mirrored --batch_size 256
Use the trained model (same --dataset and sizes find the same run):
  python main.py --dataset fashion_mnist --data_dir ../shared/data --input_height 28 --output_height 28

Every flag is documented in flags.md.
"""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines; set it to 0 to see them

from absl import app, flags

from dcgan_tf.cli import exit_with
from dcgan_tf.config import (
    ARCHS,
    D_NORMS,
    EVAL_FEATURES,
    IDX_SPLITS,
    LOSSES,
    NAN_POLICIES,
    PRESETS,
    STRATEGIES,
    Z_DISTS,
    TrainConfig,
    apply_preset,
)

FLAGS = flags.FLAGS
# Data
flags.DEFINE_string("dataset", "celebA", "Folder under --data_dir, or mnist / fashion_mnist, or a tfds name.")
flags.DEFINE_string("data_dir", "./data", "Where datasets live.")
flags.DEFINE_string("input_fname_pattern", "*.jpg", "Glob for image files inside the dataset folder.")
flags.DEFINE_integer("input_height", 108, "Height of the centre crop taken from each image (with --crop).")
flags.DEFINE_integer("input_width", None, "Width of the centre crop; default: --input_height.")
flags.DEFINE_integer("output_height", 64, "Height of the images the model generates.")
flags.DEFINE_integer("output_width", None, "Width of generated images; default: --output_height.")
flags.DEFINE_boolean("crop", False, "Centre-crop input_height x input_width before resizing.")
flags.DEFINE_boolean("flip", False, "Random horizontal flips of training images.")
flags.DEFINE_float("train_size", math.inf, "Images per epoch at most.")
flags.DEFINE_enum("idx_split", "all", list(IDX_SPLITS),
                  "mnist / fashion_mnist: all (train + test, as carpedm20) or train (keeps the test split held out).")
# Model
flags.DEFINE_integer("z_dim", 100, "Dimension of the latent z.")
flags.DEFINE_enum("z_dist", "uniform_signed", list(Z_DISTS), "Distribution of z.")
flags.DEFINE_integer("gf_dim", 64, "Generator filters in the last conv layer.")
flags.DEFINE_integer("df_dim", 64, "Discriminator filters in the first conv layer.")
flags.DEFINE_integer("gfc_dim", 1024, "Generator fully connected units (conditional model).")
flags.DEFINE_integer("dfc_dim", 1024, "Discriminator fully connected units (conditional model).")
flags.DEFINE_boolean("conditional", None, "Condition on labels; default: on for mnist and fashion_mnist.")
flags.DEFINE_enum("arch", "dcgan", list(ARCHS), "Networks: dcgan (carpedm20), mlp (fully connected) or infogan "
                  "(InfoGAN-style 28x28 convnets).")
flags.DEFINE_enum("d_norm", "auto", list(D_NORMS), "D's normalisation: batch, layer or none; auto: layer for "
                  "wgan-gp, else batch.")
flags.DEFINE_boolean("spectral_norm", False, "Spectrally normalise D's layers.")
flags.DEFINE_float("g_ema", 0.0, "Decay of an exponential moving average of G's weights, used for every "
                   "output (samples, evaluation, export, completion); 0 = off, typical 0.999.")
# Optimisation
flags.DEFINE_integer("epoch", 25, "Epochs to train.")
flags.DEFINE_integer("batch_size", 64, "Images per batch.")
flags.DEFINE_float("learning_rate", 0.0002, "Adam learning rate of both networks.")
flags.DEFINE_float("learning_rate_d", None, "Adam learning rate of D; default: --learning_rate.")
flags.DEFINE_float("learning_rate_g", None, "Adam learning rate of G; default: --learning_rate.")
flags.DEFINE_float("beta1", 0.5, "Adam beta1.")
flags.DEFINE_integer("g_steps", 2, "G updates per step, with the z of the step's last D update.")
flags.DEFINE_integer("d_steps", 1, "D (critic) updates per step, each on its own real batch (e.g. 5 for wgan-gp).")
flags.DEFINE_enum("loss", "gan", list(LOSSES),
                  "gan (non-saturating BCE), minimax (saturating), lsgan (least squares), hinge or wgan-gp.")
flags.DEFINE_float("gp_weight", 10.0, "Weight of the WGAN-GP gradient penalty (--loss wgan-gp).")
flags.DEFINE_float("label_smoothing", 0.0, "One-sided smoothing: real targets ~ U(L, 1); 0 = off.")
flags.DEFINE_float("instance_noise", 0.0, "Gaussian noise on real images, stddev ~ U(0, S) per batch; 0 = off.")
flags.DEFINE_integer("lr_decay_every", 0, "Multiply learning rates by --lr_decay every N epochs; 0 = off.")
flags.DEFINE_float("lr_decay", 1.0, "Step decay factor.")
flags.DEFINE_integer("seed", 0, "Seed of every random draw.")
flags.DEFINE_enum("nan_policy", "stop", list(NAN_POLICIES),
                  "Non-finite loss: stop (keep the last good checkpoint) or skip_batch (skip the update, count it).")
flags.DEFINE_float("max_minutes", 0.0, "Stop with a checkpoint after this many minutes; 0 = no limit.")
flags.DEFINE_enum("preset", "none", list(PRESETS), "A named recipe that sets several flags (see flags.md); "
                  "flags you give explicitly win.")
# Speed
flags.DEFINE_boolean("mixed_precision", False, "bfloat16 compute on CPU, float16 with loss scaling on GPU.")
flags.DEFINE_boolean("jit_compile", None, "Compile the train step with XLA; default (auto): on with a GPU under "
                     "--strategy default, off on CPU (slower there for transposed convs).")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES),
                  "default (one device), mirrored (every local GPU) or multi_worker (the machines in TF_CONFIG).")
# Evaluation
flags.DEFINE_integer("eval_freq", 0, "Measure FID/KID every N training steps (TensorBoard `fid`); 0 = off.")
flags.DEFINE_integer("eval_samples", 1000, "Generated images per measurement during training.")
flags.DEFINE_integer("num_eval_samples", 10000, "Generated images for --evaluate.")
flags.DEFINE_enum("eval_features", "auto", list(EVAL_FEATURES),
                  "Feature extractor: classifier (28x28 labelled data), inception, or auto.")
flags.DEFINE_string("fid_weights", "", "Local InceptionV3 (include_top=False) weights file for inception features.")
flags.DEFINE_string("classifier_dir", "", "Trained classifier folder; default checkpoints/classifier_<dataset>.")
# Outputs
flags.DEFINE_string("out_dir", "out", "Parent of run folders (FLAGS.json, TensorBoard logs).")
flags.DEFINE_string("out_name", "", "Run folder name; default: derived from dataset and sizes.")
flags.DEFINE_string("checkpoint_dir", "checkpoints", "Parent of run checkpoint folders.")
flags.DEFINE_string("sample_dir", "samples", "Parent of run sample folders.")
flags.DEFINE_integer("max_to_keep", 1, "Checkpoints to keep.")
flags.DEFINE_integer("sample_freq", 200, "Write a sample grid every N steps.")
flags.DEFINE_integer("ckpt_freq", 200, "Write a checkpoint every N steps (and at each epoch's end).")
flags.DEFINE_integer("log_freq", 20, "Write summaries and update the progress bar every N steps.")
flags.DEFINE_integer("sample_num", 64, "Images in training sample grids.")
# Modes
flags.DEFINE_boolean("train", False, "Train (resuming the run if it has a checkpoint).")
flags.DEFINE_integer("generate_test_images", 0, "Write N single test images and a grid (without --train).")
flags.DEFINE_integer("label", None, "Class of generated images (conditional model); default: all classes.")
flags.DEFINE_boolean("visualize", False, "Write latent-space pictures of --option (without --train).")
flags.DEFINE_integer("option", 0, "Visualization: 0 grid, 1 sweep PNGs, 2 random-dim GIFs, 3 per-dim GIFs, "
                     "4 merged GIF, 5 interpolation.")
flags.DEFINE_enum("interpolation", "slerp", ["linear", "slerp"], "Path between z pairs of --option 5.")
flags.DEFINE_integer("sweep_steps", None, "Values per sweep or interpolation; default: --batch_size.")
flags.DEFINE_boolean("export", False, "Export the generator as a TensorFlow SavedModel (without --train).")
flags.DEFINE_boolean("evaluate", False, "Measure FID/KID (and classifier score/accuracy) of --num_eval_samples "
                     "images of the trained model; writes <out_dir>/<out_name>/eval.json (without --train).")
flags.DEFINE_string("export_dir", "", "Export folder; default: <checkpoint_dir>/<out_name>/export.")


def config_from_flags() -> TrainConfig:
    """One validated TrainConfig from the flags (field names are flag names)."""
    names = [f for f in TrainConfig.__dataclass_fields__]
    values = {n: FLAGS[n].value for n in names}
    return TrainConfig(**apply_preset(values, {n for n in names if FLAGS[n].present})).validate()


def run(_argv):
    from dcgan_tf.train import train

    cfg = config_from_flags()
    if FLAGS.train:
        result = train(cfg)
        status = "interrupted" if result.interrupted else "stopped at --max_minutes" if result.out_of_time else "done"
        print(f"{status}: epoch {result.epoch}, step {result.step}, "
              f"{result.images_per_second:.1f} img/s; run folder {result.paths.run_dir}")
        return 130 if result.interrupted else 0
    if FLAGS.evaluate:
        from dcgan_tf.evaluate import EVAL_FILE, evaluate_run, format_metrics

        record = evaluate_run(cfg)
        print(f"step {record['step']}: {format_metrics(record['metrics'])} ({record['num_samples']} samples vs "
              f"{record['reference']}, {record['extractor']}); wrote "
              f"{os.path.join(cfg.out_dir, cfg.out_name, EVAL_FILE)}")
        return 0
    from dcgan_tf.errors import FlagError
    from dcgan_tf.generate import describe_written, use_trained_model

    for name, mode in (("option", "visualize"), ("interpolation", "visualize"), ("sweep_steps", "visualize"),
                       ("export_dir", "export")):
        if FLAGS[name].present and not FLAGS[mode].value:
            raise FlagError(name, f"only applies with --{mode}; add --{mode}")
    written = use_trained_model(cfg, generate_test_images=FLAGS.generate_test_images, label=FLAGS.label,
                                visualize=FLAGS.visualize, option=FLAGS.option, interpolation=FLAGS.interpolation,
                                sweep_steps=FLAGS.sweep_steps, export=FLAGS.export, export_dir=FLAGS.export_dir)
    print("\n".join(describe_written(written)))
    return 0


def main(argv):
    exit_with(run, argv)


if __name__ == "__main__":
    app.run(main)
