"""dcgan_tf: DCGAN training, generation and semantic inpainting for TensorFlow 2 / Keras 3.

From Python (docs/api.md):
    import dcgan_tf
    result = dcgan_tf.train(dataset="fashion_mnist", input_height=28, output_height=28, epoch=1)
    run = dcgan_tf.load_run(result.paths.checkpoint_dir)
    images = run.generate(8, seed=0)                          # uint8 [8, 28, 28, 1]
    done = run.complete(images, mask_type="center", n_iter=100)

`import dcgan_tf` does not load TensorFlow: the API (dcgan_tf.api) is imported on first use.
"""

from dcgan_tf import hardware as _hardware

_hardware.enable_onednn()  # before TensorFlow loads: its fast CPU kernels, unless TF_ENABLE_ONEDNN_OPTS is set

import importlib as _importlib  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CompletionResult", "Run", "TrainConfig", "load_run", "train"]
_API = {"CompletionResult": "dcgan_tf.api", "Run": "dcgan_tf.api", "load_run": "dcgan_tf.api", "train": "dcgan_tf.api",
        "TrainConfig": "dcgan_tf.config"}


def __getattr__(name):
    """The API's names, imported (with TensorFlow) on first use."""
    if name in _API:
        value = getattr(_importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dcgan_tf' has no attribute {name!r}")
