"""Exporting the generator (`--export`) as a TensorFlow SavedModel that runs without dcgan_tf or Keras.

The export folder holds `saved_model.pb` and `variables/` with two signatures:
  serving_default(z [B, z_dim] float32[, labels [B, y_dim] one-hot float32]) -> {"images": [B, H, W, C]}
      images are float32 in [-1, 1] (to bytes: (images + 1) * 127.5); the batch size B is free.
  metadata() -> {"z_dim", "z_dist", "z_min", "z_max", "y_dim", "height", "width", "channels"} as tensors.
and `dcgan_tf_export.json` beside them with the same facts, so a consumer can draw z as the model was
trained:
  m = tf.saved_model.load(path)
  images = m.signatures["serving_default"](z=tf.random.uniform([16, z_dim], -1, 1))["images"]
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from dcgan_tf import __version__
from dcgan_tf.atomic import atomic_path, write_json_atomic
from dcgan_tf.errors import DcganError
from dcgan_tf.latent import z_range
from dcgan_tf.model import apply_generator

EXPORT_JSON = "dcgan_tf_export.json"
VALUE_RANGE = (-1.0, 1.0)


def export_metadata(sampler, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a consumer needs to sample the exported generator correctly (the contents of dcgan_tf_export.json)."""
    z = tf.zeros((1, sampler.z_dim))
    _, height, width, channels = apply_generator(sampler.generator, z, sampler.labels(1), training=False).shape
    inputs = {"z": [None, sampler.z_dim]}
    if sampler.y_dim:
        inputs["labels"] = [None, sampler.y_dim]
    return {
        "format": "dcgan_tf generator SavedModel", "format_version": 1, "dcgan_tf_version": __version__,
        "signature": "serving_default", "inputs": inputs, "output": "images",
        "z_dim": sampler.z_dim, "z_dist": sampler.z_dist, "z_range": list(z_range(sampler.z_dist)),
        "y_dim": sampler.y_dim, "labels": "one-hot float32 [B, y_dim]" if sampler.y_dim else None,
        "height": int(height), "width": int(width), "channels": int(channels),
        "layout": "NHWC float32", "value_range": list(VALUE_RANGE), **(source or {}),
    }


class GeneratorModule(tf.Module):
    """The generator's variables and its serving functions, as tf.saved_model.save wants them.

    The Keras model itself is not an attribute: tf.saved_model.save would trace Keras 3's automatic one-input
    signature for it, which fails for the two-input conditional generator. Tracking its variables is enough,
    since the functions capture them.
    """

    def __init__(self, sampler, metadata: dict[str, Any]):
        super().__init__(name="dcgan_generator")
        G = sampler.generator
        self.generator_variables = [getattr(v, "value", v) for v in G.variables]  # tf.Variables under Keras 3
        z_spec = tf.TensorSpec([None, sampler.z_dim], tf.float32, name="z")
        if sampler.y_dim:
            label_spec = tf.TensorSpec([None, sampler.y_dim], tf.float32, name="labels")

            def generate(z, labels):
                return {"images": G(z, labels, training=False)}  # [B, H, W, C]

            self.serve = tf.function(generate, input_signature=[z_spec, label_spec])
        else:

            def generate(z):
                return {"images": G(z, training=False)}  # [B, H, W, C]

            self.serve = tf.function(generate, input_signature=[z_spec])
        constants = {k: metadata[k] for k in ("z_dim", "z_dist", "y_dim", "height", "width", "channels")}
        constants.update(z_min=metadata["z_range"][0], z_max=metadata["z_range"][1])

        def describe():
            return {k: tf.constant(v) for k, v in constants.items()}

        self.metadata = tf.function(describe, input_signature=[])


def export_generator(sampler, export_dir: str, *, source: dict[str, Any] | None = None) -> str:
    """Writes the generator of `sampler` as a SavedModel with its metadata JSON. Returns `export_dir`.

    The export is written beside `export_dir` and renamed into place, so a failed export leaves any previous
    one intact (the swap itself is two renames).

    Args:
      sampler: a sampling.Sampler (generator, z_dim, z_dist, y_dim).
      export_dir: the folder to create (replaced if it exists).
      source: extra facts for the JSON, e.g. the checkpoint path and step.
    """
    metadata = export_metadata(sampler, source)
    module = GeneratorModule(sampler, metadata)
    export_dir = os.path.normpath(export_dir)
    try:
        with atomic_path(export_dir) as tmp:  # a whole SavedModel folder, replacing an old export
            tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve.get_concrete_function(),
                                                         "metadata": module.metadata.get_concrete_function()})
            write_json_atomic(os.path.join(tmp, EXPORT_JSON), metadata)
    except (OSError, tf.errors.OpError) as e:
        raise DcganError(f"could not write the export to {export_dir} ({type(e).__name__}: {e}); "
                         "fix the folder or choose another with --export_dir") from None
    return export_dir
