"""LARS optimizer and the warm-up + cosine learning-rate schedule of SimCLR.

LARS (You, Gitman and Ginsburg, "Large Batch Training of Convolutional
Networks", arXiv 1708.03888) scales each variable's step by a "trust ratio",
the ratio of the variable's norm to its gradient's norm. SimCLR (Chen et al.,
arXiv 2002.05709, appendix B.1, and the authors' TF2 code) uses it with
momentum 0.9, trust coefficient 0.001 and weight decay 1e-6 (1e-4 on CIFAR),
with batch-norm parameters and biases excluded from both the weight decay and
the trust-ratio scaling. For one variable ``w`` with gradient ``g``:

    g = g + weight_decay * w                                   # not excluded
    ratio = trust_coefficient * |w| / (|g| + epsilon)          # not excluded
    ratio = 1 if |w| == 0 or |g| == 0 (and always for excluded variables)
    v = momentum * v + learning_rate * ratio * g
    w = w - v

``|.|`` is the L2 norm of the whole variable. The weight decay is folded into
the gradient before the trust ratio, as in the paper; it is *not* Keras's
decoupled weight decay.

The learning rate follows the paper: a peak of ``base * batch_size / 256``
("linear" scaling) or ``base * sqrt(batch_size)`` ("sqrt" scaling, better at
small batches), reached by a linear warm-up and followed by a cosine decay to
zero (`WarmupCosine`).
"""

import math
import warnings

import keras
from keras import ops

from simclr_tf.validation import check_int, check_number, is_int, is_real

_SCALINGS = ("linear", "sqrt")

# Keras's built-in layers name a weight after its role, independently of the
# layer's own (user-chosen) name: `Dense`, `EinsumDense` and the `Conv*`
# layers call their offset "bias"; `BatchNormalization` (including its
# synchronised form), `LayerNormalization` and `GroupNormalization` call their
# scale and offset "gamma" and "beta".
_EXCLUDED_ROLES = frozenset({"bias", "gamma", "beta"})


def _role(variable):
    """The variable's own name: the last component of its path, sans ':0'."""
    name = getattr(variable, "path", None) or variable.name
    return name.split("/")[-1].split(":")[0]


def _path(variable):
    return getattr(variable, "path", None) or variable.name


def _is_variable(value):
    if isinstance(value, keras.Variable):
        return True
    try:
        import tensorflow as tf
    except ImportError:  # Other backends only have keras.Variable.
        return False
    return isinstance(value, tf.Variable)


def _check_exclusions(arg_name, entries):
    """Returns `entries` as a list of path substrings and variables."""
    if entries is None:
        return []
    if isinstance(entries, str) or _is_variable(entries):
        entries = [entries]
    entries = list(entries)
    for entry in entries:
        if not (isinstance(entry, str) or _is_variable(entry)):
            raise ValueError(
                f"`{arg_name}` must be a list of variables and/or path "
                "substrings (to exclude a layer, pass "
                f"`layer.trainable_weights`). Received: {arg_name}={entries}"
            )
    return entries


@keras.saving.register_keras_serializable(package="simclr_tf")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling (LARS) with momentum, as in SimCLR.

    For every variable ``w`` with gradient ``g``: ``g += weight_decay * w``;
    ``ratio = trust_coefficient * |w| / (|g| + epsilon)``, or 1 when ``|w|``
    or ``|g|`` is 0; ``v = momentum * v + learning_rate * ratio * g``;
    ``w -= v``. Excluded variables get no weight decay and a ratio of 1 (that
    is, plain momentum SGD).

    Which variables are excluded. Always: every variable whose own name (the
    last component of `variable.path`) is ``"bias"``, ``"gamma"`` or
    ``"beta"``. Keras layers give their weights these names by role, whatever
    the layer is called, so this covers the biases of `Dense`, `EinsumDense`
    and `Conv*` layers and the scale/offset of `BatchNormalization` (and of
    `LayerNormalization` and `GroupNormalization`, which share the names), and
    it never depends on layer names: a `BatchNormalization` layer named
    ``"bn1"`` is excluded, a `Dense` layer named ``"batch_normalization"``
    keeps its kernel in. Keras variables do not record the layer that owns
    them, so the optimizer cannot test the layer type itself; for a custom
    layer whose weights are named otherwise, pass those variables explicitly.
    Use `use_weight_decay(v)` and `use_layer_adaptation(v)` to inspect the
    decision for a variable.

    Args:
        learning_rate: A non-negative float or a
            `keras.optimizers.schedules.LearningRateSchedule` (e.g.
            `WarmupCosine`) or a no-argument callable.
        momentum: Float in [0, 1). Defaults to `0.9`.
        weight_decay: Non-negative float, added to the gradient as
            ``weight_decay * w`` before the trust ratio (not decoupled).
            Defaults to `1e-6`.
        trust_coefficient: Positive float, the LARS "eta". Defaults to
            `0.001`.
        exclude_from_weight_decay: Extra variables to exclude from the weight
            decay, on top of the biases and normalisation parameters: a list
            whose entries are variables (matched by identity) and/or strings
            (matched as substrings of `variable.path`). Only the strings are
            saved by `get_config`; pass the variables again after
            deserialising. The inherited Keras method
            `exclude_from_weight_decay(var_list, var_names)` is honoured too.
        exclude_from_layer_adaptation: Extra variables to exclude from the
            trust-ratio scaling, in the same form. `None` (the default) means
            the same as `exclude_from_weight_decay`, as in the authors' code;
            pass `[]` to exclude only the biases and normalisation parameters.
        epsilon: Non-negative float added to ``|g|`` in the trust ratio.
            Defaults to `0.0`, the paper's rule.
        name: String, the name of the optimizer. Defaults to `"lars"`.
        **kwargs: Keras optimizer arguments (`clipnorm`, `global_clipnorm`,
            `use_ema`, `loss_scale_factor`, `gradient_accumulation_steps`,
            ...).

    Example:

    ```python
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4), keras.layers.BatchNormalization()]
    )
    schedule = WarmupCosine(0.3, batch_size=4, total_steps=10, warmup_steps=2)
    model.compile(optimizer=LARS(schedule, weight_decay=1e-4), loss="mse")
    model.fit(np.random.rand(8, 8), np.random.rand(8, 4), batch_size=4, epochs=1)
    ```

    Reference:
        - [You et al., 2017](https://arxiv.org/abs/1708.03888)
        - [Chen et al., 2020](https://arxiv.org/abs/2002.05709)
    """

    def __init__(
        self,
        learning_rate,
        momentum=0.9,
        weight_decay=1e-6,
        trust_coefficient=0.001,
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
        epsilon=0.0,
        name="lars",
        **kwargs,
    ):
        if is_real(learning_rate):
            # Otherwise a schedule or a variable, which Keras checks.
            learning_rate = check_number("learning_rate", learning_rate, minimum=0)
        if not is_real(momentum) or not 0 <= momentum < 1:
            raise ValueError(
                f"`momentum` must be a float in [0, 1). Received: momentum={momentum}"
            )
        if weight_decay is None:
            weight_decay = 0.0
        check_number("weight_decay", weight_decay, minimum=0)
        check_number("trust_coefficient", trust_coefficient, minimum=0, strict=True)
        check_number("epsilon", epsilon, minimum=0)
        wd_exclusions = _check_exclusions(
            "exclude_from_weight_decay", exclude_from_weight_decay
        )
        if exclude_from_layer_adaptation is None:
            adaptation_exclusions = list(wd_exclusions)
        else:
            adaptation_exclusions = _check_exclusions(
                "exclude_from_layer_adaptation", exclude_from_layer_adaptation
            )
        # The base class would apply *decoupled* weight decay from
        # `weight_decay`; `_apply_weight_decay` below turns that off because
        # LARS adds the decay to the gradient inside `update_step`.
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=float(weight_decay),
            name=name,
            **kwargs,
        )
        self.momentum = float(momentum)
        self.trust_coefficient = float(trust_coefficient)
        self.epsilon = float(epsilon)
        # Tuples: the optimizer's tracker would wrap lists of variables.
        self._wd_exclusions = tuple(wd_exclusions)
        self._adaptation_exclusions = tuple(adaptation_exclusions)

    def _is_listed(self, variable, exclusions):
        key = self._var_key(variable)
        path = _path(variable)
        for entry in exclusions:
            if isinstance(entry, str):
                if entry in path:
                    return True
            elif self._var_key(entry) == key:
                return True
        return False

    def use_weight_decay(self, variable):
        """Whether `variable` gets weight decay (False when excluded)."""
        return (
            _role(variable) not in _EXCLUDED_ROLES
            and not self._is_listed(variable, self._wd_exclusions)
            # The Keras `exclude_from_weight_decay()` method's lists.
            and self._use_weight_decay(variable)
        )

    def use_layer_adaptation(self, variable):
        """Whether `variable` gets the trust-ratio scaling."""
        return _role(variable) not in _EXCLUDED_ROLES and not self._is_listed(
            variable, self._adaptation_exclusions
        )

    def build(self, variables):
        """Creates the momentum slots and fixes each variable's exclusions."""
        if self.built:
            return
        super().build(variables)
        # Decided here, on the Keras variables: inside a distributed update
        # `update_step` only sees per-device `tf.Variable`s without a path.
        self._decay_flags = tuple(self.use_weight_decay(v) for v in variables)
        self._adaptation_flags = tuple(
            self.use_layer_adaptation(v) for v in variables
        )
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def _apply_weight_decay(self, variables):
        # Weight decay is part of the LARS gradient (`update_step`), never the
        # base class's decoupled `w -= lr * wd * w`.
        return

    def update_step(self, gradient, variable, learning_rate):
        """Applies one LARS step to `variable`."""
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        weights = ops.convert_to_tensor(variable)

        if self._decay_flags[index] and self.weight_decay > 0:
            gradient = gradient + ops.cast(self.weight_decay, dtype) * weights
        if self._adaptation_flags[index]:
            w_norm = ops.sqrt(ops.sum(ops.square(weights)))
            g_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            both_positive = ops.logical_and(w_norm > 0, g_norm > 0)
            # A safe denominator keeps the unselected branch of `where` finite
            # (no inf in the graph, e.g. under tf.debugging.check_numerics).
            denominator = ops.where(
                both_positive, g_norm + ops.cast(self.epsilon, dtype), 1.0
            )
            ratio = ops.where(
                both_positive,
                ops.cast(self.trust_coefficient, dtype) * w_norm / denominator,
                1.0,
            )
            learning_rate = learning_rate * ratio

        step = learning_rate * gradient
        if self.momentum != 0:
            velocity = self.momentums[index]
            step = ops.cast(self.momentum, dtype) * velocity + step
            self.assign(velocity, step)
        self.assign_sub(variable, step)

    def get_config(self):
        config = super().get_config()
        dropped = [
            e
            for e in self._wd_exclusions + self._adaptation_exclusions
            if not isinstance(e, str)
        ]
        if dropped:
            warnings.warn(
                "LARS.get_config() saves only the string entries of "
                "`exclude_from_weight_decay` / `exclude_from_layer_adaptation`"
                f"; {len(dropped)} variable entries are not serialisable and "
                "must be passed again when the optimizer is rebuilt.",
                stacklevel=2,
            )
        config.update(
            {
                "momentum": self.momentum,
                "trust_coefficient": self.trust_coefficient,
                "exclude_from_weight_decay": [
                    e for e in self._wd_exclusions if isinstance(e, str)
                ],
                "exclude_from_layer_adaptation": [
                    e for e in self._adaptation_exclusions if isinstance(e, str)
                ],
                "epsilon": self.epsilon,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Keras's implementation deserialises the schedule in place; keep the
        # caller's config untouched.
        return super().from_config(dict(config), custom_objects=custom_objects)


def peak_learning_rate(base_learning_rate, batch_size, scaling="linear"):
    """The paper's peak learning rate for a global batch size.

    Args:
        base_learning_rate: Positive float: 0.3 (ImageNet, "linear"), 0.075
            ("sqrt"), 1.0 (CIFAR-10, "linear") in the paper.
        batch_size: Positive int, the global batch size.
        scaling: `"linear"`: ``base * batch_size / 256``; `"sqrt"`:
            ``base * sqrt(batch_size)``.

    Returns:
        The peak learning rate as a Python float.
    """
    check_number("base_learning_rate", base_learning_rate, minimum=0, strict=True)
    check_int("batch_size", batch_size, minimum=1)
    if scaling == "linear":
        return float(base_learning_rate) * int(batch_size) / 256.0
    if scaling == "sqrt":
        return float(base_learning_rate) * math.sqrt(int(batch_size))
    raise ValueError(
        f"`scaling` must be one of {_SCALINGS}. Received: scaling={scaling!r}"
    )


@keras.saving.register_keras_serializable(package="simclr_tf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to the scaled peak learning rate, then cosine decay to 0.

    ``peak = peak_learning_rate(base_learning_rate, batch_size, scaling)``.
    For ``step < warmup_steps`` the rate is ``peak * step / warmup_steps``;
    from ``warmup_steps`` to ``total_steps`` it is
    ``0.5 * peak * (1 + cos(pi * (step - warmup_steps) / (total_steps -
    warmup_steps)))``; from ``total_steps`` on it is 0. Works element-wise on
    a tensor of steps and inside `tf.function`.

    Args:
        base_learning_rate: Positive float (0.3 for "linear", 0.075 for
            "sqrt" in the paper).
        batch_size: Positive int, the global batch size.
        total_steps: Positive int, the step at which the rate reaches 0.
        warmup_steps: Int in [0, total_steps] (10 epochs in the paper).
        scaling: `"linear"` (``base * batch_size / 256``) or `"sqrt"`
            (``base * sqrt(batch_size)``).

    Example:

    ```python
    schedule = WarmupCosine(0.3, batch_size=512, total_steps=100, warmup_steps=10)
    schedule(10)  # 0.6, the peak
    schedule(100)  # 0.0
    ```

    Reference:
        - [Chen et al., 2020](https://arxiv.org/abs/2002.05709), appendix B.1
    """

    def __init__(
        self,
        base_learning_rate,
        batch_size,
        total_steps,
        warmup_steps,
        scaling="linear",
    ):
        self.peak_learning_rate = peak_learning_rate(
            base_learning_rate, batch_size, scaling
        )
        check_int("total_steps", total_steps, minimum=1)
        if not is_int(warmup_steps) or not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                "`warmup_steps` must be an int in [0, total_steps="
                f"{total_steps}]. Received: warmup_steps={warmup_steps}"
            )
        self.base_learning_rate = float(base_learning_rate)
        self.batch_size = int(batch_size)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.scaling = scaling

    def __call__(self, step):
        step = ops.maximum(ops.cast(step, "float32"), 0.0)
        peak = self.peak_learning_rate
        # max(., 1): with no warm-up (or no decay) that branch is never taken.
        warmup = peak * step / max(self.warmup_steps, 1)
        progress = ops.clip(
            (step - self.warmup_steps)
            / max(self.total_steps - self.warmup_steps, 1),
            0.0,
            1.0,
        )
        cosine = 0.5 * peak * (1.0 + ops.cos(math.pi * progress))
        rate = ops.where(step < self.warmup_steps, warmup, cosine)
        return ops.where(step < self.total_steps, rate, 0.0)

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "batch_size": self.batch_size,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "scaling": self.scaling,
        }
