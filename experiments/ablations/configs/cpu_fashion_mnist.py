"""CPU: full Fashion-MNIST (Debian package `dataset-fashion-mnist`), sized
for a 2-core CPU.

A cell pretrains for one epoch of the 60k images unless its study says
otherwise (234 steps at batch 256; the batch x epochs and headline studies
set their own) and probes the encoder (L-BFGS logistic regression) on the first 10k
train / all 10k test images: the colour, head, batch-size and temperature
studies with ResNet-18 at 1/4 width (stride-2 stem, 28 px), the composition
study with the main job's ResNet-10 16-32-64-256. A cell costs a few
CPU-minutes; the measured costs and the results are in docs/RESULTS.md,
"Running the studies". Studies run one at a time and resume: rerun the same
command after an interruption.

Launch (one study per command):
    python -m experiments.ablations.run --config=cpu_fashion_mnist --study=composition \\
        --output_dir=runs/ablations_cpu
    python -m experiments.ablations.run --config=cpu_fashion_mnist --study=color \\
        --output_dir=runs/ablations_cpu
    python -m experiments.ablations.run --config=cpu_fashion_mnist --study=head \\
        --output_dir=runs/ablations_cpu
    python -m experiments.ablations.run --config=cpu_fashion_mnist --study=batch_epochs \\
        --output_dir=runs/ablations_cpu
    python -m experiments.ablations.run --config=cpu_fashion_mnist --study=temperature \\
        --output_dir=runs/ablations_cpu
    python -m experiments.ablations.run --config=cpu_fashion_mnist --study=headline \\
        --output_dir=runs/ablations_cpu
    python -m experiments.ablations.run --config=cpu_fashion_mnist --study=label_efficiency \\
        --output_dir=runs/ablations_cpu
"""


def get_config():
    return {
        "dataset": "fashion_mnist",
        "data_dir": None,
        # "unlabelled" for STL-10; every other dataset pretrains on "train".
        "pretrain_split": "train",
        "image_size": 28,
        "num_classes": 10,
        "seed": 0,
        # ResNet-18 at 1/4 width, the encoder the finished colour, head,
        # batch-size and temperature cells ran with (changing it would change
        # their fingerprints). Stem stride 2 (the paper's is 1) makes the
        # ResNet 4x cheaper at 28 px, which is what lets every study run on a
        # 2-core CPU.
        "encoder": {"depth": 18, "width_multiplier": 0.25, "small_images": True, "stem_stride": 2},
        "head": {"mode": "nonlinear", "num_layers": 2, "output_dim": 64},
        # SimCLRAugmentation arguments for every study but composition.
        "augment": {"crop_area_range": (0.2, 1.0), "color_strength": 0.5, "blur": False},
        # Operators of the composition study (experiments/ablations/operators.py).
        "operators": {
            "crop": {"area_range": (0.2, 1.0)},
            "cutout": {"size": 0.5},
            "color": {"strength": 1.0},
            "sobel": {},
            "noise": {"stddev_range": (0.1, 0.1)},
            "blur": {"sigma_range": (0.1, 2.0)},
            "rotate": {},
        },
        "temperature": 0.5,
        "batch_size": 256,
        # One pass over the 60k training images (234 steps) per cell.
        "epochs": 1,
        # Caps the optimiser steps per epoch (None: one pass over the data).
        "steps_per_epoch": None,
        "optimizer": {
            "name": "adam",
            "base_learning_rate": 2e-3,
            "scaling": "none",
            # Not used by "adam" (build_optimizer warns); "adamw" and "lars"
            # apply it. Left at 1e-6 so the finished cells keep their config
            # fingerprints.
            "weight_decay": 1e-6,
            "warmup_epochs": 0.2,
        },
        "jit_compile": "auto",
        "sync_batch_norm": False,
        # Linear probe on frozen features: the first N images of each split
        # (None: all of it); L-BFGS logistic regression with its L2 chosen on
        # held-out train rows (`epochs` is used only by solver "adam").
        # A study's config may add `"grid": g` (e.g. `--set
        # 'studies.headline.config.probe={"grid": 2}'`): the same probe also
        # on the last feature map pooled to g x g cells
        # (`evaluation.grid_encoder`), reported as `top1_grid` beside h's
        # `top1`. Not a key here, so finished cells keep their fingerprints.
        "probe": {"epochs": 30, "solver": "lbfgs", "train_examples": 10000, "test_examples": None},
        "studies": {
            # 49 cells of one epoch each (234 steps: `steps_per_epoch` below is
            # only a cap, above one pass) on the main job's ResNet-10 with
            # stage widths 16-32-64-256, temperature 0.2 and Adam at 3e-3,
            # probed on 10k / 10k images next to a random encoder and raw
            # pixels under the same probe. A smaller budget (a 1/8-width
            # ResNet-18 for 100 steps) left every cell at the random
            # encoder's level (docs/RESULTS.md, "Earlier results").
            "composition": {
                "operators": ["crop", "cutout", "color", "sobel", "noise", "blur", "rotate"],
                "branches": "one",
                "baselines": ["random", "pixels"],
                "config": {"encoder": {"depth": 10, "width_multiplier": None,
                                       "stage_widths": [16, 32, 64, 256], "stem_stride": 2},
                           "epochs": 1, "steps_per_epoch": 300, "temperature": 0.2,
                           "optimizer": {"base_learning_rate": 3e-3, "warmup_epochs": 0.2},
                           "probe": {"train_examples": 10000, "test_examples": 10000}},
            },
            "color": {"strengths": [0.125, 0.25, 0.5, 1.0, "1+blur"], "supervised": True, "config": {}},
            "head": {"modes": ["none", "linear", "nonlinear"], "config": {}},
            "batch_epochs": {"batch_sizes": [64, 256, 1024], "epochs": [1, 2], "config": {}},
            "temperature": {"temperatures": [0.05, 0.1, 0.5, 1.0], "config": {}},
            # The headline: at most 60 CPU-minutes of pretraining. As set
            # here, the encoder above (about 1 CPU-s a step) for 11 epochs of
            # 234 steps with Adam, probed on all 60k / 10k images by L-BFGS
            # logistic regression (L2 chosen on held-out train rows), next to
            # pixels, a random encoder and the same encoder trained with
            # labels for 3 epochs. The best cell found is these values with
            # the overrides in docs/RESULTS.md, "Headline: Fashion-MNIST
            # within 60 CPU-minutes".
            "headline": {"baselines": ["pixels", "random", "supervised"],
                         # The supervised baseline: 3 epochs with flips only
                         # (no crops or colour), probed on h like the others
                         # (its classifier's accuracy too).
                         "supervised_config": {"epochs": 3, "augment": {
                             "crop_area_range": (1.0, 1.0), "crop_aspect_ratio_range": (1.0, 1.0),
                             "color_strength": 0.0, "jitter_rate": 0.0, "grayscale_rate": 0.0}},
                         "config": {"encoder": {"stem_stride": 2}, "epochs": 11, "temperature": 0.2,
                                    "optimizer": {"base_learning_rate": 3e-3, "warmup_epochs": 0.5},
                                    "probe": {"solver": "lbfgs", "train_examples": None}}},
            # Table 7's analogue: the headline encoder (ResNet-10 16-32-64-256,
            # LARS at base 0.3 for 42 epochs, blur: the settings of
            # `simclr-tf pretrain --dataset=fashion_mnist --epochs=42 --set
            # optimizer.base_learning_rate=0.3 --set augment.blur=True`), then
            # every arm at 1%, 10% and 100% of the labels over three
            # label-subset seeds (docs/RESULTS.md, "The headline encoder with
            # few labels"). A cell pretrains for about 30 minutes on 2 cores;
            # the trained arms add about as much again.
            "label_efficiency": {
                "pretrain_seeds": [0, 1, 2],
                "fractions": [0.01, 0.1, 1.0],
                "seeds": [0, 1, 2],
                "arms": ["learned", "random", "pixels", "finetune", "supervised"],
                # Fewer labels take more epochs for the same number of steps.
                "epochs": {0.01: 100, 0.1: 30, 1.0: 6},
                "learning_rates": [3e-4, 3e-3],
                "config": {"encoder": {"depth": 10, "width_multiplier": None,
                                       "stage_widths": [16, 32, 64, 256], "stem_stride": 2},
                           "epochs": 42, "temperature": 0.2, "augment": {"blur": True},
                           "optimizer": {"name": "lars", "base_learning_rate": 0.3, "scaling": "sqrt",
                                         "weight_decay": 1e-4, "warmup_epochs": 1}},
            },
        },
    }
