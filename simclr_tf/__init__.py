"""simclr_tf: SimCLR contrastive self-supervised learning for TensorFlow/Keras 3.

Public API:
    SimCLR, ProjectionHead, resnet, nt_xent, NTXentLoss, LARS, WarmupCosine,
    SimCLRAugmentation and the augmentation layers, export_encoder, and the
    modules `simclr_tf.data`, `simclr_tf.evaluation`, `simclr_tf.visualize`.
"""

__version__ = "0.1.0"

from simclr_tf import data  # noqa: F401
from simclr_tf.augmentation import (  # noqa: F401
    ColorDistortion,
    Cutout,
    GaussianNoise,
    RandomApply,
    RandomColorJitter,
    RandomFlip,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomResizedCrop,
    RandomRotate90,
    SimCLRAugmentation,
    SobelFilter,
)
from simclr_tf.heads import ProjectionHead  # noqa: F401
from simclr_tf.losses import NTXentLoss, nt_xent  # noqa: F401
from simclr_tf.model import SimCLR  # noqa: F401
from simclr_tf.optimizers import LARS, WarmupCosine, peak_learning_rate  # noqa: F401
from simclr_tf.resnet import resnet  # noqa: F401
from simclr_tf.export import export_encoder  # noqa: F401
from simclr_tf import evaluation, visualize  # noqa: F401
