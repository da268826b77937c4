"""GPU: CIFAR-10 through TFDS, sized for one modern GPU (not run here).

For users who have the data prepared (`tfds build cifar10`, or pass
`--set data_dir=...`). ResNet-18 (CIFAR stem), batch 512, LARS with the
paper's CIFAR-10 settings (base learning rate 1.0 scaled linearly,
weight decay 1e-4, tau 0.5, colour strength 0.5, no blur). Budgets are far
below the paper's 1000 epochs: the composition study has 49 cells.

Launch:
    python -m experiments.ablations.run --config=gpu_cifar10 --study=composition \\
        --output_dir=runs/ablations_cifar10
    (likewise --study=color, head, batch_epochs, temperature, headline, label_efficiency)
"""


def get_config():
    return {
        "dataset": "tfds:cifar10",
        "data_dir": None,
        "pretrain_split": "train",
        "image_size": 32,
        "num_classes": 10,
        "seed": 0,
        "encoder": {"depth": 18, "width_multiplier": 1, "small_images": True},
        "head": {"mode": "nonlinear", "num_layers": 2, "output_dim": 128},
        "augment": {"crop_area_range": (0.08, 1.0), "color_strength": 0.5, "blur": False},
        "operators": {
            "crop": {"area_range": (0.08, 1.0)},
            "cutout": {"size": 0.5},
            "color": {"strength": 1.0},
            "sobel": {},
            "noise": {"stddev_range": (0.1, 0.1)},
            "blur": {"sigma_range": (0.1, 2.0)},
            "rotate": {},
        },
        "temperature": 0.5,
        "batch_size": 512,
        "epochs": 200,
        "steps_per_epoch": None,
        "optimizer": {
            "name": "lars",
            "base_learning_rate": 1.0,
            "scaling": "linear",
            "weight_decay": 1e-4,
            "warmup_epochs": 10,
        },
        "jit_compile": "auto",
        "sync_batch_norm": False,
        "probe": {"epochs": 100, "train_examples": None, "test_examples": None},
        "studies": {
            "composition": {"operators": ["crop", "cutout", "color", "sobel", "noise", "blur", "rotate"],
                            "branches": "one", "config": {"epochs": 50, "optimizer": {"warmup_epochs": 5}}},
            "color": {"strengths": [0.125, 0.25, 0.5, 1.0, "1+blur"], "supervised": True, "config": {}},
            "head": {"modes": ["none", "linear", "nonlinear"], "config": {}},
            "batch_epochs": {"batch_sizes": [256, 512, 1024], "epochs": [100, 200, 400], "config": {}},
            "temperature": {"temperatures": [0.05, 0.1, 0.5, 1.0], "config": {}},
            "headline": {"baselines": ["pixels", "random", "supervised"], "config": {"epochs": 800}},
            # Table 7's protocol on the headline's budget.
            "label_efficiency": {"pretrain_seeds": [0], "fractions": [0.01, 0.1, 1.0], "seeds": [0, 1, 2],
                                 "epochs": {0.01: 60, 0.1: 30, 1.0: 15}, "learning_rates": [1e-4, 1e-3],
                                 "config": {"epochs": 800}},
        },
    }
