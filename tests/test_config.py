"""The configs: TrainConfig defaults, validation by flag name (choices too), run paths and the saved-run check."""

import dataclasses
import math
import os
import subprocess
import sys

import pytest

from dcgan_tf import masks
from dcgan_tf.atomic import write_json_atomic
from dcgan_tf.config import (
    PRESETS,
    ClassifierConfig,
    CompleteConfig,
    ModeConfig,
    RunPaths,
    TrainConfig,
    apply_preset,
    check_against_saved,
    check_choices,
    read_saved_flags,
)
from dcgan_tf.errors import FlagError


def test_defaults_follow_carpedm20():
    cfg = TrainConfig()
    assert (cfg.epoch, cfg.batch_size, cfg.learning_rate, cfg.beta1, cfg.z_dim) == (25, 64, 0.0002, 0.5, 100)
    assert (cfg.input_height, cfg.input_width, cfg.output_height, cfg.output_width) == (108, 108, 64, 64)
    assert cfg.learning_rate_d == cfg.learning_rate_g == 0.0002
    assert cfg.train_size == math.inf and cfg.g_steps == 2 and not cfg.conditional


def test_labelled_datasets_are_conditional_and_names_have_no_timestamp():
    cfg = TrainConfig(dataset="fashion_mnist", input_height=28, output_height=28)
    assert cfg.conditional and cfg.y_dim == 10
    assert cfg.out_name == "fashion_mnist_28x28"
    assert TrainConfig(dataset="faces", input_height=96, output_height=48, crop=True).out_name == \
        "faces_48x48_crop96x96"


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("epoch", -1), ("learning_rate_d", 0.0),
                                         ("label_smoothing", 1.5), ("instance_noise", -0.1), ("beta1", 1.0),
                                         ("z_dist", "gauss"), ("loss", "wgan"), ("lr_decay", 0.0),
                                         ("output_height", 0), ("train_size", 0), ("arch", "resnet"),
                                         ("d_norm", "group"), ("g_ema", 1.0), ("g_ema", -0.1), ("gp_weight", -1.0),
                                         ("d_steps", 0), ("max_minutes", -1.0), ("preset", "best")])
def test_bad_values_name_the_flag(field, value):
    with pytest.raises(FlagError, match=f"--{field}"):
        TrainConfig(**{field: value}).validate()


def test_dict_round_trip_and_saved_run_check(tmp_path):
    cfg = TrainConfig(dataset="tiny", out_dir=str(tmp_path / "out"), checkpoint_dir=str(tmp_path / "ck"))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    paths = RunPaths.from_config(cfg)
    assert read_saved_flags(paths) is None
    paths.make_dirs()
    write_json_atomic(paths.flags_json, {**cfg.to_dict(), "c_dim": 3})
    saved = read_saved_flags(paths)
    check_against_saved(cfg, saved, {"c_dim": 3})
    with pytest.raises(FlagError, match="--z_dim"):
        check_against_saved(dataclasses.replace(cfg, z_dim=64), saved)
    with pytest.raises(FlagError, match="--dataset: gives c_dim=1"):
        check_against_saved(cfg, saved, {"c_dim": 1})


def test_wgan_gp_gets_layer_norm_and_refuses_batch_norm_and_smoothing():
    assert TrainConfig(loss="wgan-gp").d_norm == "layer" and TrainConfig().d_norm == "batch"
    assert TrainConfig(loss="wgan-gp", d_norm="none").validate().d_norm == "none"
    with pytest.raises(FlagError, match="--d_norm: is batch"):
        TrainConfig(loss="wgan-gp", d_norm="batch").validate()
    with pytest.raises(FlagError, match="--label_smoothing"):
        TrainConfig(loss="wgan-gp", label_smoothing=0.1).validate()


def test_infogan_sizes_must_be_multiples_of_four():
    TrainConfig(arch="infogan", output_height=28, input_height=28).validate()
    with pytest.raises(FlagError, match="--output_width: is 30"):
        TrainConfig(arch="infogan", output_height=28, output_width=30).validate()


def test_images_per_step_counts_every_critic_batch():
    assert TrainConfig(batch_size=16, d_steps=5).images_per_step == 80
    assert TrainConfig(batch_size=16).images_per_step == 16


def test_presets_fill_only_flags_the_user_did_not_give():
    values = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    tuned = PRESETS["tuned"]
    assert tuned, "the tuned preset sets something"
    got = apply_preset({**values, "preset": "tuned"}, explicit=set())
    assert all(got[k] == v for k, v in tuned.items())
    name = next(iter(tuned))
    kept = apply_preset({**values, "preset": "tuned", name: values[name]}, explicit={name})
    assert kept[name] == values[name]
    assert apply_preset(values, explicit=set()) == values  # preset none
    cfg = TrainConfig(**{**got, "dataset": "fashion_mnist", "output_height": 28, "input_height": 28})
    assert cfg.validate().out_name == "fashion_mnist_28x28_tuned"  # never mixes with a plain run's folder


def test_new_architecture_flags_are_checked_against_the_saved_run():
    saved = TrainConfig(arch="infogan", output_height=28, input_height=28).to_dict()
    for field, value in (("arch", "dcgan"), ("spectral_norm", True), ("g_ema", 0.999), ("d_norm", "layer")):
        with pytest.raises(FlagError, match=f"--{field}"):
            check_against_saved(TrainConfig(**{**saved, field: value}), saved)


def test_every_option_but_jit_compile_is_accepted_under_a_strategy():
    for strategy in ("mirrored", "multi_worker"):
        TrainConfig(strategy=strategy, g_ema=0.999, spectral_norm=True, loss="wgan-gp", d_steps=5, max_minutes=1.0,
                    mixed_precision=True, nan_policy="skip_batch").validate()
        TrainConfig(strategy=strategy).validate()  # --jit_compile auto is off under a strategy
        with pytest.raises(FlagError, match=f"^--jit_compile: XLA cannot compile the step of --strategy {strategy}"):
            TrainConfig(strategy=strategy, jit_compile=True).validate()


@pytest.mark.parametrize("config_cls,field,value", [
    (CompleteConfig, "mask_type", "square"), (CompleteConfig, "half_side", "middle"),
    (CompleteConfig, "approach", "sgd"), (CompleteConfig, "class_search", "best"), (CompleteConfig, "blend", "alpha"),
    (ModeConfig, "option", 6), (ModeConfig, "interpolation", "cubic"), (ClassifierConfig, "dataset", "celebA"),
])
def test_a_value_outside_a_settings_choices_names_the_flag_and_its_choices(config_cls, field, value):
    choices = config_cls.__dataclass_fields__[field].metadata["choices"]
    assert len(choices) >= 2
    with pytest.raises(FlagError) as e:
        config_cls(**{field: value}).validate()
    assert str(e.value) == f"--{field}: must be one of {', '.join(map(str, choices))}, got {value!r}"


def test_the_completion_word_lists_come_from_their_domain_modules():
    fields = CompleteConfig.__dataclass_fields__
    assert fields["mask_type"].metadata["choices"] is masks.MASK_TYPES
    assert fields["half_side"].metadata["choices"] is masks.HALF_SIDES
    for field in ("mask_type", "half_side", "approach", "class_search", "blend"):  # the flag shows them
        assert not any(f"{c}," in fields[field].metadata["help"] for c in fields[field].metadata["choices"])


def test_check_choices_checks_only_the_fields_named():
    cfg = CompleteConfig(blend="alpha")
    check_choices(cfg, names=("mask_type",))
    with pytest.raises(FlagError, match="^--blend: "):
        check_choices(cfg)


def test_importing_the_configs_loads_no_tensorflow():
    """The programs make their flags from these configs before they hide TensorFlow's start-up lines."""
    code = "import sys, dcgan_tf.config; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    assert out.stdout.strip() == "[]"
