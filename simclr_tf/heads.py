"""The projection head g(h) -> z of SimCLR.

Modes, as in the paper's projection-head study (figure 8):

- `nonlinear`: `num_layers` dense layers; every one but the last is
  Dense(hidden_dim, no bias) + BN + ReLU, the last is Dense(output_dim, no
  bias) + BN without centring (beta), as in the authors' code. SimCLR v1 uses
  2 layers, v2 uses 3 and fine-tunes from the first hidden layer.
- `linear`: one Dense(output_dim) + BN (no centring).
- `none`: the identity, z = h.

`call(h, return_hidden=True)` also returns every layer's output, `[h, g1, ...]`,
so SimCLRv2-style fine-tuning can read a middle layer (`hidden_output`).
"""

import keras
from keras import layers

from simclr_tf.validation import is_int

_MODES = ("nonlinear", "linear", "none")


@keras.saving.register_keras_serializable(package="simclr_tf")
class ProjectionHead(keras.layers.Layer):
    """SimCLR projection head.

    Args:
        num_layers: number of dense layers in `nonlinear` mode (>= 1).
        hidden_dim: width of the hidden layers; None uses the input width.
        output_dim: width of z (128 in the paper).
        mode: `"nonlinear"`, `"linear"` or `"none"`.
        sync_batch_norm: BN statistics over all replicas (global BN).

    Example:

    >>> head = ProjectionHead(output_dim=8)
    >>> head(keras.ops.ones((2, 16))).shape
    TensorShape([2, 8])

    Reference:
        Chen et al., SimCLR (ICML 2020) section 4.2; SimCLRv2 (arXiv
        2006.10029) section 2.
    """

    def __init__(
        self,
        num_layers=2,
        hidden_dim=None,
        output_dim=128,
        mode="nonlinear",
        sync_batch_norm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}. Received: mode={mode!r}")
        if not is_int(num_layers) or num_layers < 1:
            raise ValueError(
                f"`num_layers` must be an integer >= 1. Received: num_layers={num_layers!r} "
                f"(type {type(num_layers).__name__})"
            )
        for arg, value in (("hidden_dim", hidden_dim), ("output_dim", output_dim)):
            if value is not None and (not is_int(value) or value < 1):
                raise ValueError(
                    f"`{arg}` must be a positive integer. Received: {arg}={value!r} "
                    f"(type {type(value).__name__})"
                )
        if output_dim is None:
            raise ValueError("`output_dim` must be a positive integer. Received: output_dim=None")
        num_layers = int(num_layers)
        hidden_dim = None if hidden_dim is None else int(hidden_dim)
        output_dim = int(output_dim)
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.mode = mode
        self.sync_batch_norm = sync_batch_norm
        self.dense_layers = []
        self.norm_layers = []

    def _bn(self, center, name):
        return layers.BatchNormalization(
            momentum=0.9,
            epsilon=1e-5,
            center=center,
            synchronized=self.sync_batch_norm,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(
                "ProjectionHead needs a known feature size. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if self.mode == "none":
            widths = []
        elif self.mode == "linear":
            widths = [self.output_dim]
        else:
            hidden = self.hidden_dim or in_dim
            widths = [hidden] * (self.num_layers - 1) + [self.output_dim]
        dense_layers, norm_layers = [], []
        shape = tuple(input_shape)
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            dense = layers.Dense(
                width, use_bias=False, dtype=self.dtype_policy, name=f"dense_{i}"
            )
            norm = self._bn(center=not last, name=f"bn_{i}")
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            norm.build(shape)
            dense_layers.append(dense)
            norm_layers.append(norm)
        self.dense_layers = dense_layers
        self.norm_layers = norm_layers
        self.built = True

    def _layer(self, x, i, training):
        x = self.norm_layers[i](self.dense_layers[i](x), training=training)
        if i < len(self.dense_layers) - 1:
            x = keras.ops.relu(x)
        return x

    def call(self, inputs, training=None, return_hidden=False):
        outputs = [inputs]
        x = inputs
        for i in range(len(self.dense_layers)):
            x = self._layer(x, i, training)
            outputs.append(x)
        if return_hidden:
            return x, outputs
        return x

    def hidden_output(self, inputs, layer_index, training=None):
        """Output of layer `layer_index` (0 = the input h, 1 = first layer...)."""
        depth = len(self.dense_layers)
        if not is_int(layer_index) or not 0 <= layer_index <= depth:
            raise ValueError(
                f"`layer_index` must be an integer in [0, {depth}]. "
                f"Received: layer_index={layer_index!r}"
            )
        layer_index = int(layer_index)
        x = inputs
        for i in range(layer_index):
            x = self._layer(x, i, training)
        return x

    def compute_output_shape(self, input_shape):
        if self.mode == "none":
            return tuple(input_shape)
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            hidden_dim=self.hidden_dim,
            output_dim=self.output_dim,
            mode=self.mode,
            sync_batch_norm=self.sync_batch_norm,
        )
        return config
