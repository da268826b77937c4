"""The augmentation benchmark still runs and its baselines make what they claim.

Tiny settings; nothing is timed against a threshold (speed is measured in
``benchmarks/``, results in ``docs/BENCHMARKS.md``).
"""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_KERAS_CV = importlib.util.find_spec("keras_cv") is not None


def _load(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_augment_benchmark_measures_every_column():
    bench = _load("augment")
    extra = {"constant": lambda: np.zeros(1)}
    rates = bench.measure(16, 20, True, batch=4, steps=1, repeats=1, extra=extra)
    assert list(rates) == ["ours/tf.function", "ours/XLA", "keras-cv", "authors/tf.data", "constant"]
    for name, rate in rates.items():
        if name == "keras-cv" and not HAS_KERAS_CV:
            assert rate is None
        else:
            assert rate > 0, name


def test_augment_benchmark_baselines_make_views():
    bench = _load("augment")
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (20, 24, 3)), tf.uint8)
    tf.random.set_seed(0)
    views = np.stack([bench.authors_view(image, size=16, blur=True).numpy() for _ in range(4)])
    assert views.shape == (4, 16, 16, 3) and views.min() >= 0.0 and views.max() <= 1.0
    assert len({v.tobytes() for v in views}) == 4  # random views, not one fixed transform
    if HAS_KERAS_CV:
        batch = tf.cast(tf.stack([image] * 4), tf.float32) / 255.0
        out = bench.keras_cv_pipeline(16, blur=True)(batch, training=True)
        assert tuple(out.shape) == (4, 16, 16, 3)
        assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0 + 1e-5


@pytest.mark.slow  # builds and compiles the default model twice
def test_input_pipeline_benchmark_runs_on_a_tiny_folder(tmp_path):
    bench = _load("input_pipeline")
    result = bench.main([f"--cache={tmp_path}", "--num_images=12", "--image_size=16", "--batch_size=4",
                         "--repeats=1", "--train_steps=1", "--train_batch_size=8"])
    assert set(result["images_per_s"]) == {"simclr_tf.data.from_folder", "keras image_dataset_from_directory"}
    assert all(rate > 0 for rate in result["images_per_s"].values())
    assert result["step_ratio"] > 0
