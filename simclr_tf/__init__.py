"""simclr_tf: SimCLR contrastive self-supervised learning for TensorFlow/Keras 3."""

__version__ = "0.1.0"
