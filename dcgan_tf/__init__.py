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
import sys as _sys  # noqa: E402
import types as _types  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CompletionResult", "Run", "TrainConfig", "load_run", "train"]
_API = {"CompletionResult": "dcgan_tf.api", "Run": "dcgan_tf.api", "load_run": "dcgan_tf.api",
        "TrainConfig": "dcgan_tf.config"}


class _TrainModule(_types.ModuleType):
    """The class of the module dcgan_tf.train (the training loop), made callable as the API's `train`.

    `dcgan_tf.train` names both the module (which Python binds on the package when it is imported) and the API
    function, so the module calls the function: `dcgan_tf.train(epoch=1, ...)` is `dcgan_tf.api.train(...)`, while
    `from dcgan_tf.train import train` and `import dcgan_tf.train as module` keep working.
    """

    def __call__(self, config=None, **settings):
        """dcgan_tf.api.train: trains a run from main.py's flags as keyword arguments (or a TrainConfig)."""
        return _importlib.import_module("dcgan_tf.api").train(config, **settings)


class _Package(_types.ModuleType):
    def __setattr__(self, name, value):
        if name == "train" and isinstance(value, _types.ModuleType) and type(value) is _types.ModuleType:
            value.__class__ = _TrainModule  # the import system binds the submodule here
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name):
    """The API's names, imported (with TensorFlow) on first use."""
    if name == "train":
        return _importlib.import_module("dcgan_tf.train")  # binds dcgan_tf.train, callable (_Package)
    if name in _API:
        value = getattr(_importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dcgan_tf' has no attribute {name!r}")
