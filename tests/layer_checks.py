"""The checks every layer of simclr_tf passes, shared by the layers' test files.

A test file lists its layers as ``LayerCase``s and runs every check on each::

    CASES = [LayerCase("RandomFlip", lambda: aug.RandomFlip(seed=1), IMAGES, random=True)]

    @layer_checks.parametrize(CASES)
    def test_layer_checks(case, check, tmp_path):
        layer_checks.run_check(case, check, tmp_path)

The checks (``CHECKS``), each against a reference made eagerly by a fresh
layer (two successive calls, so a layer's random state must advance the same
way everywhere):

- ``eager``: output dtype and ``compute_output_shape``; a second fresh layer
  replays the reference (a seeded layer is reproducible) and, for a random
  layer, its two calls differ (so the other comparisons can fail);
- ``function``: the same two outputs from ``tf.function``;
- ``xla``: the same from ``tf.function(jit_compile=True)``; a case whose ops
  have no XLA kernel names the reason in ``no_xla`` and is skipped when
  compiling fails for that reason (and fails when it compiles: the reason is
  stale);
- ``dataset``: the same two outputs from two elements of a
  ``tf.data.Dataset.map``;
- ``config``: ``serialize_keras_object`` / ``deserialize_keras_object`` gives
  the same class and config, and with the weights copied the clone's first
  call is the reference's (the seed travels in the config); for a random
  layer, another seed changes the output;
- ``saved``: inside a ``keras.Model`` saved to ``.keras`` and loaded, the
  first call is the reference's, and so is the original model's.

Fresh layers are made after ``keras.utils.set_random_seed``, so layers with
weights start from the same weights. ``.keras`` files keep weights but not a
``SeedGenerator``'s state (Keras saves only the seed, in the config), so a
loaded random layer restarts its sequence: the ``saved`` check compares first
calls. ``check_loss_config`` is the config round trip for a ``keras.losses.Loss``.
"""

import dataclasses
import re
from typing import Callable, Optional

import keras
import numpy as np
import pytest
import tensorflow as tf

CHECKS = ("eager", "function", "xla", "dataset", "config", "saved")

_NO_XLA_KERNEL = re.compile(r"No registered '(\w+)' OpKernel for XLA")


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """One layer under test.

    Args:
        name: the test id.
        make: returns a fresh layer (called once per comparison).
        inputs: a NumPy batch to call it on (keep it tiny: e.g. 2x8x8x3).
        call_kwargs: passed to every call, e.g. ``{"training": False}``.
        random: the output depends on the layer's seed: two calls must differ
            and another seed must change the output.
        no_xla: why the layer cannot compile under XLA (an op with no XLA
            kernel); the ``xla`` check then skips with this reason.
        xfail: ``{check: reason}`` for checks known to fail (strict xfail).
        atol: tolerance of the output comparisons.
    """

    name: str
    make: Callable[[], keras.layers.Layer]
    inputs: np.ndarray
    call_kwargs: dict = dataclasses.field(default_factory=dict)
    random: bool = False
    no_xla: Optional[str] = None
    xfail: dict = dataclasses.field(default_factory=dict)
    atol: float = 1e-5


def parametrize(cases, checks=CHECKS):
    """``pytest.mark.parametrize("case, check", ...)`` over every case and check."""
    params = []
    for case in cases:
        for check in checks:
            marks = [pytest.mark.xfail(reason=case.xfail[check], strict=True)] if check in case.xfail else []
            params.append(pytest.param(case, check, id=f"{case.name}-{check}", marks=marks))
    return pytest.mark.parametrize("case, check", params)


def run_check(case, check, tmp_path):
    """Runs one of ``CHECKS`` on ``case``; ``tmp_path`` is used by ``saved``."""
    if check not in CHECKS:
        raise ValueError(f"`check` must be one of {CHECKS}. Received: check={check!r}")
    _RUNNERS[check](case, tmp_path)


def check_layer(case, tmp_path):
    """Runs every check on ``case`` (a test that wants them in one test)."""
    for check in CHECKS:
        run_check(case, check, tmp_path)


def check_loss_config(loss, y_true, y_pred, rtol=1e-6):
    """A ``keras.losses.Loss`` survives ``keras.losses.serialize`` /
    ``deserialize``: same class, same config, same value on the same input."""
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    np.testing.assert_allclose(float(restored(y_true, y_pred)), float(loss(y_true, y_pred)), rtol=rtol)
    return restored


# ---------------------------------------------------------------- internals


def _fresh(case):
    keras.utils.set_random_seed(1234)
    return case.make()


def _call(layer, case):
    return np.asarray(layer(case.inputs, **case.call_kwargs))


def _reference(case):
    layer = _fresh(case)
    return [_call(layer, case) for _ in range(2)]


def _assert_same(case, actual, expected, what):
    assert len(actual) == len(expected)
    for i, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(np.asarray(a), b, atol=case.atol, rtol=0,
                                   err_msg=f"{case.name}: {what}, call {i + 1} differs from the eager reference")


def _check_eager(case, tmp_path):
    del tmp_path
    layer = _fresh(case)
    first = layer(case.inputs, **case.call_kwargs)
    expected_shape = tuple(layer.compute_output_shape(case.inputs.shape))
    assert tuple(first.shape) == expected_shape, (case.name, tuple(first.shape), expected_shape)
    assert keras.backend.standardize_dtype(first.dtype) == layer.compute_dtype, (case.name, first.dtype)
    outputs = [np.asarray(first), _call(layer, case)]
    assert all(np.all(np.isfinite(o)) for o in outputs), f"{case.name}: non-finite output"
    _assert_same(case, outputs, _reference(case), "a second fresh layer")
    if case.random:
        assert np.abs(outputs[0] - outputs[1]).max() > case.atol, (
            f"{case.name}: two calls gave the same output; the random state does not advance")


def _traced(case, jit_compile):
    layer = _fresh(case)
    kwargs = case.call_kwargs

    def call(x):
        return layer(x, **kwargs)

    fn = tf.function(call, jit_compile=jit_compile, autograph=False)
    return [fn(case.inputs) for _ in range(2)]


def _check_function(case, tmp_path):
    del tmp_path
    _assert_same(case, _traced(case, jit_compile=False), _reference(case), "tf.function")


def _check_xla(case, tmp_path):
    del tmp_path
    try:
        outputs = _traced(case, jit_compile=True)
    except tf.errors.InvalidArgumentError as error:
        missing = _NO_XLA_KERNEL.search(str(error))
        if missing and case.no_xla:
            pytest.skip(f"{case.name}: {case.no_xla} ({missing.group(1)} has no XLA kernel on this device)")
        if missing:
            pytest.fail(f"{case.name}: {missing.group(1)} has no XLA kernel; if that is expected, give the "
                        "case `no_xla=<reason>`")
        raise
    if case.no_xla:
        pytest.fail(f"{case.name} compiled under XLA, so `no_xla={case.no_xla!r}` is stale: remove it")
    _assert_same(case, outputs, _reference(case), "XLA")


def _check_dataset(case, tmp_path):
    del tmp_path
    layer = _fresh(case)
    kwargs = case.call_kwargs

    def call(x):
        return layer(x, **kwargs)

    dataset = tf.data.Dataset.from_tensors(case.inputs).repeat(2).map(call)
    _assert_same(case, list(dataset), _reference(case), "tf.data.Dataset.map")


def _check_config(case, tmp_path):
    del tmp_path
    layer = _fresh(case)
    config = layer.get_config()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == config
    expected = _call(layer, case)
    if layer.weights:
        if not clone.built:
            clone.build(case.inputs.shape)
        clone.set_weights(layer.get_weights())
    _assert_same(case, [_call(clone, case)], [expected], "the from_config clone")
    if case.random and "seed" in config:
        reseeded = type(layer).from_config({**config, "seed": (config["seed"] or 0) + 1})
        assert np.abs(_call(reseeded, case) - expected).max() > case.atol, (
            f"{case.name}: another seed gave the same output")


def _check_saved(case, tmp_path):
    layer = _fresh(case)
    inputs = keras.Input(case.inputs.shape[1:], dtype=str(case.inputs.dtype))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / f"{case.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [type(lay) for lay in loaded.layers] == [type(lay) for lay in model.layers]
    expected = _reference(case)[:1]
    _assert_same(case, [loaded(case.inputs, **case.call_kwargs)], expected, "the loaded .keras model")
    _assert_same(case, [model(case.inputs, **case.call_kwargs)], expected, "the model before saving")


_RUNNERS = {
    "eager": _check_eager,
    "function": _check_function,
    "xla": _check_xla,
    "dataset": _check_dataset,
    "config": _check_config,
    "saved": _check_saved,
}
