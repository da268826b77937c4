"""GPU: STL-10 through TFDS, sized for one modern GPU (not run here).

Pretrains on the 100k `unlabelled` images at 96 px (ImageNet stem, blur on
as in the paper for images above 32 px, colour strength 1.0) and probes on
the 5k labelled train / 8k test images. For users with the data prepared
(`tfds build stl10`, or `--set data_dir=...`).

Launch:
    python -m experiments.ablations.run --config=gpu_stl10 --study=composition \\
        --output_dir=runs/ablations_stl10
    (likewise --study=color, head, batch_epochs, temperature, headline, label_efficiency)
"""

from experiments.ablations.configs import gpu_cifar10


def get_config():
    config = gpu_cifar10.get_config()
    config.update({
        "dataset": "tfds:stl10",
        "pretrain_split": "unlabelled",
        "image_size": 96,
        "encoder": {"depth": 18, "width_multiplier": 1, "small_images": False},
        "augment": {"crop_area_range": (0.08, 1.0), "color_strength": 1.0, "blur": True},
        "batch_size": 512,
        "epochs": 100,
    })
    studies = config["studies"]
    studies["composition"]["config"] = {"epochs": 20, "optimizer": {"warmup_epochs": 2}}
    studies["batch_epochs"].update({"batch_sizes": [256, 512, 1024], "epochs": [50, 100, 200]})
    studies["headline"]["config"] = {"epochs": 400}
    studies["label_efficiency"]["config"] = {"epochs": 400}
    return config
