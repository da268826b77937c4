"""oneDNN on or off: the SimCLR train step and its floor, in two processes.

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported, and turns
oneDNN on by default only on CPUs with AVX-512 VNNI / BF16 or AMX; the
`simclr-tf` entry points turn it on (unless the variable is set) because on
AVX2-only CPUs it is much faster. This runs `benchmarks/train_step.py` with the variable at 0 and at 1,
alternating (0, 1, 0, 1, ...), and keeps each setting's best round, so the
ratio is measured side by side on a shared machine.

    python benchmarks/onednn.py --rounds 2 -- --width 0.25 --size 28 --stem_stride 2 --steps 5
"""

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(setting, extra):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, os.path.join(HERE, "train_step.py"), "--rounds", "2", *extra],
                         env=env, capture_output=True, text=True, check=True).stdout
    floor = float(re.search(r"floor .*?: ([0-9.]+) s/step", out).group(1))
    full = float(re.search(r"full SimCLR step: +([0-9.]+) s/step", out).group(1))
    return floor, full, out.splitlines()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="arguments for train_step.py (after --)")
    args = parser.parse_args()
    best = {}
    for _ in range(args.rounds):
        for setting in ("0", "1"):
            floor, full, header = run(setting, args.extra)
            old = best.get(setting, (float("inf"), float("inf")))
            best[setting] = (min(old[0], floor), min(old[1], full))
    print(header)
    print("| TF_ENABLE_ONEDNN_OPTS | floor s/step | full s/step | full / floor |")
    print("|---|---|---|---|")
    for setting, (floor, full) in best.items():
        print(f"| {setting} | {floor:.3f} | {full:.3f} | {full / floor:.3f} |")
    print(f"oneDNN speed-up of the full step: {best['0'][1] / best['1'][1]:.2f}x, "
          f"of the floor: {best['0'][0] / best['1'][0]:.2f}x")


if __name__ == "__main__":
    main()
