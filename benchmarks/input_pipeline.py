"""Input-pipeline speed: `from_folder` vs Keras's folder loader, and the main job fed by a folder.

1. Images/s of one pass over the same folder of JPEGs (half around 96 px,
   half around 256 px, crops of scikit-image's photos, generated once into
   `--cache`) by `simclr_tf.data.from_folder` and by
   `keras.utils.image_dataset_from_directory(labels=None)`, both resizing
   to `--image_size`; repeats alternate, the median and the ratio are
   reported (target: ratio >= 1.0).
2. Seconds per train step of the default config's SimCLR model
   (`simclr_tf_cli/configs/default.py`) fed by the folder pipeline vs by
   in-memory arrays of the same shape (target: ratio <= 1.05).

Run (the numbers depend on the machine and its load; note `uptime`):

    nice python benchmarks/input_pipeline.py --num_images=10000

A tiny setting runs in tests/test_benchmarks.py.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("astronaut", "coffee", "chelsea", "rocket")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run as a script from a checkout


def make_folder(cache, num_images, seed=0):
    """Writes `num_images` JPEGs into `cache` once; later runs reuse them."""
    import PIL.Image
    import skimage.data

    marker = os.path.join(cache, f".complete_{num_images}")
    if os.path.exists(marker):
        return cache
    os.makedirs(cache, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in SOURCES]
    for i in range(num_images):
        photo = photos[i % len(photos)]
        centre = 96 if i % 2 == 0 else 256
        h, w = (int(v) for v in rng.integers(int(centre * 0.8), int(centre * 1.15) + 1, 2))
        h, w = min(h, photo.shape[0]), min(w, photo.shape[1])
        y = int(rng.integers(0, photo.shape[0] - h + 1))
        x = int(rng.integers(0, photo.shape[1] - w + 1))
        crop = np.ascontiguousarray(photo[y:y + h, x:x + w, :3])
        PIL.Image.fromarray(crop).save(os.path.join(cache, f"{i:06d}.jpg"), quality=90)
    open(marker, "w").close()
    return cache


def _rate(ds, num_images):
    start = time.perf_counter()
    count = 0
    for batch in ds:
        count += int(batch.shape[0])
    elapsed = time.perf_counter() - start
    assert count == num_images, (count, num_images)
    return count / elapsed


def loaders(folder, image_size, batch_size):
    import keras

    from simclr_tf import data

    return {
        "simclr_tf.data.from_folder": lambda: data.from_folder(
            folder, image_size=image_size, labels=None, batch_size=batch_size),
        "keras image_dataset_from_directory": lambda: keras.utils.image_dataset_from_directory(
            folder, labels=None, image_size=(image_size, image_size), batch_size=batch_size,
            shuffle=False, verbose=False),
    }


def measure_loaders(folder, num_images, image_size, batch_size, repeats):
    """{loader: [images/s per repeat]}, repeats alternating between the loaders."""
    builders = loaders(folder, image_size, batch_size)
    rates = {name: [] for name in builders}
    for _ in range(repeats):
        for name, build in builders.items():
            rates[name].append(_rate(build(), num_images))
    return rates


def measure_train_step(folder, steps, batch_size=None, warmup=3):
    """Seconds per train step of the default config fed by arrays and by the folder."""
    import keras
    import tensorflow as tf

    from simclr_tf import data
    from simclr_tf_cli import builders
    from simclr_tf_cli.configs.default import get_config

    config = get_config()
    batch_size = batch_size or config["batch_size"]
    config["batch_size"] = batch_size
    size = config["image_size"]
    feeds = {
        "arrays": lambda: data.from_arrays(
            np.random.default_rng(0).integers(0, 256, (batch_size * 4, size, size, 3), dtype=np.uint8),
            batch_size=batch_size, shuffle=True, repeat=True, drop_remainder=True, seed=0),
        "folder": lambda: data.from_folder(
            folder, image_size=size, labels=None, batch_size=batch_size, shuffle=True, repeat=True,
            drop_remainder=True, seed=0),
    }
    out = {}
    for name, feed in feeds.items():
        keras.utils.set_random_seed(0)
        model = builders.build_model(config, online_probe=False)
        model.compile(optimizer=builders.build_optimizer(config, steps), jit_compile=builders.resolve_jit(config))
        iterator = iter(feed())
        model.make_train_function()
        step = model.train_function
        for _ in range(warmup):
            step(iterator)
        start = time.perf_counter()
        for _ in range(steps):
            logs = step(iterator)
        float(tf.nest.flatten(logs)[0])
        out[name] = (time.perf_counter() - start) / steps
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "simclr_tf_input_bench"))
    parser.add_argument("--num_images", type=int, default=10_000)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train_steps", type=int, default=10, help="0 skips the train-step comparison.")
    parser.add_argument("--train_batch_size", type=int, default=None, help="None: the config's.")
    args = parser.parse_args(argv)

    folder = make_folder(os.path.join(args.cache, str(args.num_images)), args.num_images)
    print(f"load: {os.getloadavg()}; cpus: {os.cpu_count()}")
    rates = measure_loaders(folder, args.num_images, args.image_size, args.batch_size, args.repeats)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name:36s} median {medians[name]:8.0f} images/s  ({', '.join(f'{v:.0f}' for v in values)})")
    ours, keras_rate = medians.values()
    print(f"ratio from_folder / image_dataset_from_directory: {ours / keras_rate:.2f}")
    result = {"images_per_s": medians, "ratio": ours / keras_rate}
    if args.train_steps:
        steps = measure_train_step(folder, args.train_steps, args.train_batch_size)
        for name, seconds in steps.items():
            print(f"train step fed by {name:6s}: {seconds * 1000:.1f} ms")
        print(f"ratio folder / arrays: {steps['folder'] / steps['arrays']:.3f}")
        result["step_s"] = steps
        result["step_ratio"] = steps["folder"] / steps["arrays"]
    print(f"load: {os.getloadavg()}")
    return result


if __name__ == "__main__":
    main()
