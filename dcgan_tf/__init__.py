"""dcgan_tf: DCGAN training, generation and semantic inpainting for TensorFlow 2 / Keras 3."""

from dcgan_tf import hardware as _hardware

_hardware.enable_onednn()  # before TensorFlow loads: its fast CPU kernels, unless TF_ENABLE_ONEDNN_OPTS is set

__version__ = "0.1.0"
