"""Full SimCLR train step against its floor: the bare encoder on 2N views.

The floor is a forward + backward pass of the same encoder on 2N already
augmented float images with the same optimizer: the least any SimCLR step
can cost. The full step adds two augmenter calls, the projection head,
NT-Xent and metric bookkeeping. Both run through `model.fit`-style compiled
train functions in the same process, interleaved, so the ratio is robust to
the machine's background load.

    python benchmarks/train_step.py                   # 32 px, small ResNet-18, batch 256
    python benchmarks/train_step.py --width 0.25 --batch 256 --steps 10
"""

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# What `import simclr_tf` sets when TensorFlow is not imported yet (keras
# imports it first here); benchmarks/onednn.py compares both settings.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import simclr_tf  # noqa: E402


def build(args):
    encoder = simclr_tf.resnet(args.depth, args.width, (args.size, args.size, 3), small_images=True,
                               stem_stride=args.stem_stride)
    model = simclr_tf.SimCLR(
        encoder,
        simclr_tf.ProjectionHead(output_dim=128),
        simclr_tf.SimCLRAugmentation(args.size, seed=0),
        temperature=0.5,
    )
    model.compile(optimizer=simclr_tf.LARS(0.1), jit_compile=args.jit)
    return model


def floor_step(encoder, optimizer):
    """Encoder forward + backward on 2N views plus the optimizer update."""
    variables = encoder.trainable_variables

    @tf.function(jit_compile=None)
    def step(views):
        with tf.GradientTape() as tape:
            h = encoder(views, training=True)
            loss = tf.reduce_mean(tf.square(h))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--stem_stride", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jit", action="store_true")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(0, 255, (args.batch, args.size, args.size, 3), np.uint8)
    images = tf.constant(images)
    model = build(args)
    model.make_train_function()
    full = model.train_function
    data = tf.data.Dataset.from_tensors(images).repeat()
    iterator = iter(data)

    floor_model = simclr_tf.resnet(args.depth, args.width, (args.size, args.size, 3), small_images=True,
                                   stem_stride=args.stem_stride)
    floor_opt = simclr_tf.LARS(0.1)
    floor = floor_step(floor_model, floor_opt)
    views = tf.random.uniform((2 * args.batch, args.size, args.size, 3))

    def run_full(n):
        for _ in range(n):
            logs = full(iterator)
        float(logs["loss"])

    def run_floor(n):
        for _ in range(n):
            loss = floor(views)
        float(loss)

    run_full(1)
    run_floor(1)  # compile both
    times = {"full": [], "floor": []}
    for _ in range(args.rounds):
        for name, fn in (("floor", run_floor), ("full", run_full)):
            start = time.perf_counter()
            fn(args.steps)
            times[name].append((time.perf_counter() - start) / args.steps)
    full_s, floor_s = min(times["full"]), min(times["floor"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    params = model.encoder.count_params()
    print(f"encoder resnet{args.depth} x{args.width} ({params:,} params, stem stride {args.stem_stride}), "
          f"{args.size}px, oneDNN={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}, "
          f"batch {args.batch} (2N = {2 * args.batch} views), jit={args.jit}")
    print(f"floor (encoder fwd+bwd on 2N views): {floor_s:.3f} s/step, {args.batch / floor_s:.1f} images/s")
    print(f"full SimCLR step:                    {full_s:.3f} s/step, {args.batch / full_s:.1f} images/s")
    print(f"full / floor time ratio: {full_s / floor_s:.3f}  (target <= 1.05)")
    print(f"peak host memory (RSS): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
