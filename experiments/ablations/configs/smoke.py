"""Smoke: every study on a handful of steps, to check the harness end to end.

The numbers mean nothing (a few optimiser steps, probes on a few hundred
images); the tests use this config. A cell takes a few CPU-seconds.

Launch:
    python -m experiments.ablations.run --study=head --config=smoke --output_dir=/tmp/smoke
    python -m experiments.ablations.run --study=composition --config=smoke \\
        --set "studies.composition.operators=['crop', 'color']"
"""

from experiments.ablations.configs import cpu_fashion_mnist


def get_config():
    config = cpu_fashion_mnist.get_config()
    config.update({
        "dataset": "embedded",
        "image_size": 16,
        # A 2-layer conv net: a ResNet's graph takes most of a smoke cell's time
        # to trace.
        "encoder": {"arch": "convnet", "filters": [16, 32]},
        "head": {"mode": "nonlinear", "num_layers": 2, "output_dim": 16},
        "batch_size": 32,
        "epochs": 1,
        "steps_per_epoch": 2,
        "probe": {"epochs": 20, "batch_size": 64, "train_examples": 256, "test_examples": 256},
    })
    config["optimizer"]["warmup_epochs"] = 0
    for section in config["studies"].values():
        section["config"] = {}
    config["studies"]["batch_epochs"].update({"batch_sizes": [16, 32], "epochs": [1, 2]})
    config["studies"]["label_efficiency"].update({
        "pretrain_seeds": [0], "fractions": [0.2, 1.0], "seeds": [0, 1], "epochs": 2,
        "learning_rates": [3e-3], "max_train_examples": 200})
    return config
