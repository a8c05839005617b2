"""dcgan_tf: DCGAN training, generation and semantic inpainting for TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
