r"""Train a DCGAN, or use a trained one.

Train on a folder of images (`--data_dir/--dataset`, sub-folders too):
  python main.py --dataset faces --input_height 96 --output_height 48 --crop --train --epoch 300 \
      --input_fname_pattern "*.jpg"
Train the conditional model on Fashion-MNIST (idx files in --data_dir, Debian's package or tfds):
  python main.py --dataset fashion_mnist --input_height 28 --output_height 28 --train
Watch it:
  tensorboard --logdir out/
Train on every GPU of this machine (--batch_size is the global batch; docs/scaling.md):
  python main.py --dataset celebA --train --strategy mirrored --batch_size 256
Use the trained model (same --dataset and sizes find the same run):
  python main.py --dataset fashion_mnist --input_height 28 --output_height 28

Every flag is documented in flags.md.
"""

import os

from absl import flags

from dcgan_tf.cli import define_flags, exit_with, flag_values, start
from dcgan_tf.config import ModeConfig, TrainConfig, apply_preset

FLAGS = flags.FLAGS
define_flags(TrainConfig)  # data, model, optimisation, speed, evaluation and output settings (config.py)
define_flags(ModeConfig)  # --train, --evaluate, or a use of the trained model


def config_from_flags() -> TrainConfig:
    """One validated TrainConfig from the flags, a --preset's recipe filled in under the flags given."""
    values, given = flag_values(TrainConfig)
    return TrainConfig(**apply_preset(values, given)).validate()


def saved_run_config_from_flags() -> TrainConfig:
    """config_from_flags for a use of a trained run: the architecture flags not given are the run's (FLAGS.json)."""
    from dcgan_tf.runs import with_saved_architecture

    values, given = flag_values(TrainConfig)
    return with_saved_architecture(TrainConfig(**apply_preset(values, given)), given)


def run(_argv):
    modes = ModeConfig(**flag_values(ModeConfig)[0])
    cfg = config_from_flags() if modes.train else saved_run_config_from_flags()
    if modes.train:
        from dcgan_tf.training import train

        result = train(cfg)
        status = "interrupted" if result.interrupted else "stopped at --max_minutes" if result.out_of_time else "done"
        print(f"{status}: epoch {result.epoch}, step {result.step}, "
              f"{result.images_per_second:.1f} img/s; run folder {result.paths.run_dir}")
        return 130 if result.interrupted else 0
    if modes.evaluate:
        from dcgan_tf.evaluate import EVAL_FILE, evaluate_run, format_metrics

        record = evaluate_run(cfg)
        print(f"step {record['step']}: {format_metrics(record['metrics'])} ({record['num_samples']} samples vs "
              f"{record['reference']}, {record['extractor']}); wrote "
              f"{os.path.join(cfg.out_dir, cfg.out_name, EVAL_FILE)}")
        return 0
    from dcgan_tf.generate import describe_written, use_trained_model

    print("\n".join(describe_written(use_trained_model(cfg, **modes.use_options()))))  # validates the modes
    return 0


def main(argv):
    """absl's main: `run`, with a user error as one line and exit code 2."""
    exit_with(run, argv)


if __name__ == "__main__":
    start(main)
