"""Tests for `simclr_tf.optimizers`: LARS and WarmupCosine against NumPy."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from simclr_tf.optimizers import LARS, WarmupCosine, peak_learning_rate

# ---------------------------------------------------------------------------
# NumPy references, written from the paper's rule, not from the implementation.


def lars_reference(weights, grads_per_step, lrs, decay, adapt, *, momentum,
                   weight_decay, trust, epsilon=0.0):
    w = [np.array(x, np.float64) for x in weights]
    v = [np.zeros_like(x) for x in w]
    for lr, grads in zip(lrs, grads_per_step):
        for i, g in enumerate(grads):
            g = np.array(g, np.float64)
            if decay[i]:
                g = g + weight_decay * w[i]
            ratio = 1.0
            if adapt[i]:
                w_norm, g_norm = np.linalg.norm(w[i]), np.linalg.norm(g)
                if w_norm > 0 and g_norm > 0:
                    ratio = trust * w_norm / (g_norm + epsilon)
            v[i] = momentum * v[i] + lr * ratio * g
            w[i] = w[i] - v[i]
    return w


def warmup_cosine_reference(step, base, batch_size, total, warmup, scaling):
    if scaling == "linear":
        peak = base * batch_size / 256
    else:
        peak = base * math.sqrt(batch_size)
    if step < warmup:
        return peak * step / warmup
    if step >= total:
        return 0.0
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


# ---------------------------------------------------------------------------
# Fixtures.


def tiny_model():
    """Variables in this order, with their expected (decay, adapt) flags.

    0 kernel of a Dense *named* "batch_normalization" -> (True, True)
    1 its bias                                        -> (False, False)
    2 gamma of a BatchNormalization named "bn1"       -> (False, False)
    3 its beta (starts at 0)                          -> (False, False)
    4 zero-initialised kernel, no bias                -> (True, True)
    5 kernel that will get a zero gradient            -> (True, True)
    6 its bias                                        -> (False, False)
    """
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="batch_normalization",
                               bias_initializer="ones"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.Dense(5, use_bias=False, kernel_initializer="zeros",
                               name="zero_init"),
            keras.layers.Dense(2, name="zero_grad", bias_initializer="ones"),
        ]
    )


DEFAULT_DECAY = [True, False, False, False, True, True, False]
DEFAULT_ADAPT = [True, False, False, False, True, True, False]
ZERO_GRAD_INDEX = 5


def random_grads(variables, steps, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        grads = [rng.normal(size=v.shape).astype("float32") for v in variables]
        grads[ZERO_GRAD_INDEX] = np.zeros(variables[ZERO_GRAD_INDEX].shape, "float32")
        out.append(grads)
    return out


def run_optimizer(optimizer, variables, grads_per_step):
    for grads in grads_per_step:
        optimizer.apply([tf.constant(g) for g in grads], variables)
    return [v.numpy() for v in variables]


HPARAMS = dict(momentum=0.9, weight_decay=1e-2, trust_coefficient=0.1)


def assert_moved(before, after, min_change=1e-3):
    """The comparisons below are meaningless if the step is below tolerance."""
    for b, a in zip(before, after):
        assert np.max(np.abs(a - b)) > min_change


# ---------------------------------------------------------------------------
# LARS: update rule.


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(HPARAMS),
        dict(HPARAMS, momentum=0.0),
        dict(HPARAMS, epsilon=0.5),
        dict(HPARAMS, weight_decay=0.0),
    ],
    ids=["default", "no_momentum", "epsilon", "no_weight_decay"],
)
def test_lars_matches_numpy_reference(kwargs):
    model = tiny_model()
    variables = model.trainable_variables
    before = [v.numpy() for v in variables]
    grads = random_grads(variables, steps=4)
    optimizer = LARS(0.5, **kwargs)

    after = run_optimizer(optimizer, variables, grads)

    expected = lars_reference(
        before, grads, [0.5] * 4, DEFAULT_DECAY, DEFAULT_ADAPT,
        momentum=kwargs["momentum"], weight_decay=kwargs["weight_decay"],
        trust=kwargs["trust_coefficient"], epsilon=kwargs.get("epsilon", 0.0),
    )
    for a, e in zip(after, expected):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6)
    assert_moved(before[:ZERO_GRAD_INDEX], after[:ZERO_GRAD_INDEX])
    if kwargs["weight_decay"] > 0:
        # Zero gradient, but weight decay alone moves a non-excluded kernel.
        assert not np.allclose(before[ZERO_GRAD_INDEX], after[ZERO_GRAD_INDEX])


def test_lars_with_warmup_cosine_schedule():
    model = tiny_model()
    variables = model.trainable_variables
    before = [v.numpy() for v in variables]
    grads = random_grads(variables, steps=5, seed=3)
    schedule = WarmupCosine(1.0, batch_size=128, total_steps=5, warmup_steps=2)

    after = run_optimizer(LARS(schedule, **HPARAMS), variables, grads)

    lrs = [warmup_cosine_reference(s, 1.0, 128, 5, 2, "linear") for s in range(5)]
    assert lrs[0] == 0.0  # The schedule really is read at iterations 0..4.
    expected = lars_reference(
        before, grads, lrs, DEFAULT_DECAY, DEFAULT_ADAPT, momentum=0.9,
        weight_decay=1e-2, trust=0.1,
    )
    for a, e in zip(after, expected):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6)


def test_paper_defaults_match_reference():
    model = tiny_model()
    variables = model.trainable_variables
    before = [v.numpy() for v in variables]
    grads = random_grads(variables, steps=3, seed=5)
    optimizer = LARS(2.0)
    assert (optimizer.momentum, optimizer.weight_decay,
            optimizer.trust_coefficient) == (0.9, 1e-6, 0.001)

    after = run_optimizer(optimizer, variables, grads)

    expected = lars_reference(
        before, grads, [2.0] * 3, DEFAULT_DECAY, DEFAULT_ADAPT, momentum=0.9,
        weight_decay=1e-6, trust=0.001,
    )
    for b, a, e in zip(before, after, expected):
        # Trust-scaled steps are small here: compare the steps themselves.
        step, expected_step = a - b, e - b
        assert np.max(np.abs(expected_step)) > 1e-4
        np.testing.assert_allclose(step, expected_step, rtol=1e-3, atol=1e-7)


# ---------------------------------------------------------------------------
# LARS: which variables are excluded.


def test_default_exclusions_follow_variable_roles_not_layer_names():
    model = tiny_model()
    optimizer = LARS(0.1)
    variables = model.trainable_variables
    assert [v.path.split("/")[-2:] for v in variables[:3]] == [
        ["batch_normalization", "kernel"],
        ["batch_normalization", "bias"],
        ["bn1", "gamma"],
    ]
    assert [optimizer.use_weight_decay(v) for v in variables] == DEFAULT_DECAY
    assert [optimizer.use_layer_adaptation(v) for v in variables] == DEFAULT_ADAPT


def test_other_normalization_and_conv_layers_are_excluded_by_role():
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(3, 3, name="c"),
            keras.layers.BatchNormalization(synchronized=True, name="s"),
            keras.layers.LayerNormalization(name="ln"),
            keras.layers.GroupNormalization(groups=1, name="gn"),
        ]
    )
    optimizer = LARS(0.1)
    flags = {v.path.split("/", 1)[1]: optimizer.use_layer_adaptation(v)
             for v in model.trainable_variables}
    assert flags == {
        "c/kernel": True, "c/bias": False, "s/gamma": False, "s/beta": False,
        "ln/gamma": False, "ln/beta": False, "gn/gamma": False, "gn/beta": False,
    }


def test_explicit_exclusions_by_variable_and_substring():
    model = tiny_model()
    variables = model.trainable_variables
    before = [v.numpy() for v in variables]
    grads = random_grads(variables, steps=3, seed=7)
    optimizer = LARS(
        0.5, **HPARAMS,
        exclude_from_weight_decay=[variables[0], "zero_init"],
        exclude_from_layer_adaptation=["zero_grad/kernel"],
    )
    decay = [False, False, False, False, False, True, False]
    adapt = [True, False, False, False, True, False, False]
    assert [optimizer.use_weight_decay(v) for v in variables] == decay
    assert [optimizer.use_layer_adaptation(v) for v in variables] == adapt

    after = run_optimizer(optimizer, variables, grads)

    expected = lars_reference(before, grads, [0.5] * 3, decay, adapt,
                              momentum=0.9, weight_decay=1e-2, trust=0.1)
    for a, e in zip(after, expected):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6)


def test_layer_adaptation_exclusions_default_to_weight_decay_ones():
    model = tiny_model()
    variables = model.trainable_variables
    inherits = LARS(0.1, exclude_from_weight_decay=["zero_grad"])
    explicit_empty = LARS(0.1, exclude_from_weight_decay=["zero_grad"],
                          exclude_from_layer_adaptation=[])
    assert not inherits.use_layer_adaptation(variables[ZERO_GRAD_INDEX])
    assert explicit_empty.use_layer_adaptation(variables[ZERO_GRAD_INDEX])
    assert not explicit_empty.use_weight_decay(variables[ZERO_GRAD_INDEX])


def test_keras_exclude_from_weight_decay_method_is_honoured():
    model = tiny_model()
    variables = model.trainable_variables
    optimizer = LARS(0.1)
    optimizer.exclude_from_weight_decay(var_names=["kernel"])
    assert not any(optimizer.use_weight_decay(v) for v in variables)
    assert optimizer.use_layer_adaptation(variables[0])


def test_bad_exclusion_entries_raise():
    with pytest.raises(ValueError, match="exclude_from_weight_decay"):
        LARS(0.1, exclude_from_weight_decay=[keras.layers.Dense(2)])
    # A single string is one substring, not a list of characters.
    opt = LARS(0.1, exclude_from_layer_adaptation="zero_grad")
    assert opt.get_config()["exclude_from_layer_adaptation"] == ["zero_grad"]


# ---------------------------------------------------------------------------
# LARS: arguments and serialisation.


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(learning_rate=-1), "Received: learning_rate=-1"),
        (dict(learning_rate=0.1, momentum=1.0), "Received: momentum=1.0"),
        (dict(learning_rate=0.1, momentum=-0.1), "Received: momentum=-0.1"),
        (dict(learning_rate=0.1, weight_decay=-1e-4), "Received: weight_decay=-0.0001"),
        (dict(learning_rate=0.1, trust_coefficient=0), "Received: trust_coefficient=0"),
        (dict(learning_rate=0.1, trust_coefficient=-1.0),
         "Received: trust_coefficient=-1.0"),
        (dict(learning_rate=0.1, epsilon=-1.0), "Received: epsilon=-1.0"),
        (dict(learning_rate=float("inf")), "Received: learning_rate=inf"),
        (dict(learning_rate=0.1, weight_decay=float("inf")), "Received: weight_decay=inf"),
    ],
)
def test_lars_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LARS(**kwargs)


def test_lars_accepts_edge_arguments():
    LARS(0, momentum=0.0, weight_decay=0.0)
    LARS(1, weight_decay=None)


def test_lars_config_round_trip():
    schedule = WarmupCosine(0.075, batch_size=64, total_steps=100,
                            warmup_steps=10, scaling="sqrt")
    optimizer = LARS(schedule, momentum=0.8, weight_decay=1e-4,
                     trust_coefficient=0.002, epsilon=1e-9,
                     exclude_from_weight_decay=["head"],
                     exclude_from_layer_adaptation=["head", "probe"],
                     clipnorm=1.0, name="my_lars")
    config = optimizer.get_config()
    json.dumps(config)  # Plain data only.

    restored = LARS.from_config(config)
    assert restored.get_config() == config
    assert isinstance(restored._learning_rate, WarmupCosine)

    serialized = keras.optimizers.serialize(optimizer)
    assert serialized["registered_name"] == "simclr_tf>LARS"
    deserialized = keras.optimizers.deserialize(json.loads(json.dumps(serialized)))
    assert type(deserialized) is LARS
    assert isinstance(deserialized._learning_rate, WarmupCosine)
    assert deserialized.get_config() == config


def test_lars_config_drops_variables_with_a_warning():
    model = tiny_model()
    optimizer = LARS(0.1, exclude_from_weight_decay=[model.trainable_variables[0], "x"])
    with pytest.warns(UserWarning, match="not serialisable"):
        config = optimizer.get_config()
    assert config["exclude_from_weight_decay"] == ["x"]


def test_deserialized_optimizer_makes_the_same_updates():
    optimizer = LARS(0.5, **HPARAMS)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    results = []
    for opt in (optimizer, clone):
        model = tiny_model()
        variables = model.trainable_variables
        results.append(run_optimizer(opt, variables, random_grads(variables, 2)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_saved_model_file_restores_lars(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    schedule = WarmupCosine(0.3, batch_size=4, total_steps=10, warmup_steps=2)
    model.compile(optimizer=LARS(schedule, weight_decay=1e-4), loss="mse")
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), batch_size=4, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)

    loaded = keras.models.load_model(path)

    assert isinstance(loaded.optimizer, LARS)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == 2
    for a, b in zip(loaded.optimizer.momentums, model.optimizer.momentums):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---------------------------------------------------------------------------
# LARS: loss scaling, tf.distribute, XLA.


def test_inside_loss_scale_optimizer():
    grads = random_grads(tiny_model().trainable_variables, steps=2, seed=11)

    plain_model = tiny_model()
    plain = run_optimizer(LARS(0.5, **HPARAMS), plain_model.trainable_variables, grads)

    model = tiny_model()
    variables = model.trainable_variables
    optimizer = keras.optimizers.LossScaleOptimizer(LARS(0.5, **HPARAMS),
                                                    initial_scale=1024.0)
    for step_grads in grads:
        optimizer.apply([tf.constant(g * 1024.0) for g in step_grads], variables)
    for a, b in zip([v.numpy() for v in variables], plain):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

    # A non-finite gradient skips the step and halves the scale.
    before = [v.numpy() for v in variables]
    bad = [tf.fill(v.shape, np.inf) for v in variables]
    optimizer.apply(bad, variables)
    for a, b in zip([v.numpy() for v in variables], before):
        np.testing.assert_array_equal(a, b)
    assert float(optimizer.dynamic_scale.numpy()) == 512.0

    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored.inner_optimizer) is LARS


def regression_model(batch_norm):
    layers = [keras.Input((5,)), keras.layers.Dense(8, activation="relu")]
    if batch_norm:
        # Synchronised BN: the same statistics on one device and on two.
        layers.append(keras.layers.BatchNormalization(synchronized=True))
    layers.append(keras.layers.Dense(1))
    return keras.Sequential(layers)


def fit_regression(strategy, weights, batch_norm=True, jit_compile=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    with strategy.scope():
        model = regression_model(batch_norm)
        model.set_weights(weights)
        schedule = WarmupCosine(1.0, batch_size=256, total_steps=8, warmup_steps=2)
        model.compile(optimizer=LARS(schedule, **HPARAMS), loss="mse",
                      jit_compile=jit_compile)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model


def test_mirrored_strategy_matches_single_device(mirrored_strategy):
    strategy = mirrored_strategy
    assert strategy.num_replicas_in_sync == 2
    keras.utils.set_random_seed(0)
    init = regression_model(batch_norm=True).get_weights()

    single = fit_regression(tf.distribute.get_strategy(), init).get_weights()
    mirrored = fit_regression(strategy, init).get_weights()

    assert len(single) == len(mirrored) == len(init)
    for s, m in zip(single, mirrored):
        np.testing.assert_allclose(m, s, rtol=1e-5, atol=1e-6)
    assert_moved(init[:2], single[:2])


def test_jit_compiled_fit_matches_graph_fit():
    keras.utils.set_random_seed(0)
    init = regression_model(batch_norm=True).get_weights()
    default = tf.distribute.get_strategy()

    graph = fit_regression(default, init)
    xla = fit_regression(default, init, jit_compile=True)

    assert xla.jit_compile is True
    for g, x in zip(graph.get_weights(), xla.get_weights()):
        # XLA fuses and reorders float32 arithmetic: ~1e-6 drift per step.
        np.testing.assert_allclose(x, g, rtol=1e-4, atol=1e-5)
    assert_moved(init[:2], xla.get_weights()[:2])


# ---------------------------------------------------------------------------
# WarmupCosine.


SCHEDULES = [
    dict(base=0.3, batch_size=4096, total=100, warmup=10, scaling="linear"),
    dict(base=0.075, batch_size=512, total=50, warmup=7, scaling="sqrt"),
    dict(base=1.0, batch_size=1024, total=20, warmup=0, scaling="linear"),
    dict(base=0.5, batch_size=256, total=12, warmup=12, scaling="linear"),
    dict(base=0.5, batch_size=256, total=1, warmup=0, scaling="sqrt"),
]


@pytest.mark.parametrize("c", SCHEDULES)
def test_warmup_cosine_matches_numpy_reference(c):
    schedule = WarmupCosine(c["base"], c["batch_size"], c["total"], c["warmup"],
                            scaling=c["scaling"])
    steps = np.arange(c["total"] + 5)

    rates = keras.ops.convert_to_numpy(schedule(steps))

    expected = [warmup_cosine_reference(s, c["base"], c["batch_size"], c["total"],
                                        c["warmup"], c["scaling"]) for s in steps]
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-7)


def test_warmup_cosine_landmarks():
    schedule = WarmupCosine(0.3, batch_size=512, total_steps=110, warmup_steps=10)
    assert schedule.peak_learning_rate == pytest.approx(0.6)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(0.3)
    assert float(schedule(10)) == pytest.approx(0.6)
    assert float(schedule(60)) == pytest.approx(0.3)
    assert float(schedule(110)) == 0.0
    assert float(schedule(10_000)) == 0.0


def test_peak_learning_rate():
    assert peak_learning_rate(0.3, 4096, "linear") == pytest.approx(4.8)
    assert peak_learning_rate(0.075, 4096, "sqrt") == pytest.approx(4.8)
    assert peak_learning_rate(1.0, 512) == pytest.approx(2.0)


def test_warmup_cosine_in_tf_function_with_tensor_step():
    schedule = WarmupCosine(0.3, batch_size=256, total_steps=20, warmup_steps=4)
    step = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def next_rate():
        rate = schedule(step)
        step.assign_add(1)
        return rate

    rates = [float(next_rate()) for _ in range(25)]
    expected = [warmup_cosine_reference(s, 0.3, 256, 20, 4, "linear")
                for s in range(25)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-7)
    assert next_rate.experimental_get_tracing_count() == 1


def test_warmup_cosine_config_round_trip():
    schedule = WarmupCosine(0.075, batch_size=np.int64(64), total_steps=100,
                            warmup_steps=10, scaling="sqrt")
    config = schedule.get_config()
    assert config == {"base_learning_rate": 0.075, "batch_size": 64,
                      "total_steps": 100, "warmup_steps": 10, "scaling": "sqrt"}
    json.dumps(config)
    assert WarmupCosine.from_config(config).get_config() == config

    serialized = keras.optimizers.schedules.serialize(schedule)
    assert serialized["registered_name"] == "simclr_tf>WarmupCosine"
    restored = keras.optimizers.schedules.deserialize(
        json.loads(json.dumps(serialized)))
    assert type(restored) is WarmupCosine
    assert float(restored(30)) == float(schedule(30))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(base_learning_rate=0.0), "Received: base_learning_rate=0.0"),
        (dict(base_learning_rate=-1), "Received: base_learning_rate=-1"),
        (dict(base_learning_rate=float("nan")), "Received: base_learning_rate=nan"),
        (dict(batch_size=0), "Received: batch_size=0"),
        (dict(batch_size=2.5), "Received: batch_size=2.5"),
        (dict(total_steps=0), "Received: total_steps=0"),
        (dict(total_steps=-3), "Received: total_steps=-3"),
        (dict(warmup_steps=-1), "Received: warmup_steps=-1"),
        (dict(warmup_steps=101), "Received: warmup_steps=101"),
        (dict(scaling="cosine"), "Received: scaling='cosine'"),
    ],
)
def test_warmup_cosine_rejects_bad_arguments(kwargs, message):
    args = dict(base_learning_rate=0.3, batch_size=256, total_steps=100,
                warmup_steps=10, scaling="linear")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        WarmupCosine(**args)


@settings(max_examples=40, deadline=None)
@given(
    base=st.floats(1e-3, 10.0),
    batch_size=st.integers(1, 8192),
    total=st.integers(1, 10_000),
    warmup_fraction=st.floats(0.0, 1.0),
    scaling=st.sampled_from(["linear", "sqrt"]),
    step_fraction=st.floats(0.0, 1.2),
)
def test_warmup_cosine_property(base, batch_size, total, warmup_fraction, scaling,
                                step_fraction):
    warmup = int(warmup_fraction * total)
    step = int(step_fraction * total)
    schedule = WarmupCosine(base, batch_size, total, warmup, scaling=scaling)

    rate = float(schedule(step))

    expected = warmup_cosine_reference(step, base, batch_size, total, warmup, scaling)
    tolerance = 1e-6 * schedule.peak_learning_rate
    assert rate == pytest.approx(expected, rel=1e-4, abs=tolerance)
    assert 0.0 <= rate <= schedule.peak_learning_rate * (1 + 1e-6)
