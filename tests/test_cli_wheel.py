"""The built wheel: what it holds, and `simclr-tf pretrain` installed in a fresh venv.

The venv borrows the test environment's packages (TensorFlow and the rest)
through a `.pth` file and installs only the wheel, with no index, so the test
downloads nothing; it runs from a folder outside the checkout, so only the
installed package can be imported.
"""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: setuptools from this environment, nothing downloaded.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), ROOT],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = out.glob("simclr_tf-*.whl")
    return path


@pytest.mark.slow
def test_wheel_holds_the_command_configs_and_embedded_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "simclr_tf_launcher.py" in names
    assert "simclr_tf_cli/configs/default.py" in names and "simclr_tf_cli/pretrain.py" in names
    assert any(n.startswith("simclr_tf/") and n.endswith("fashion_mnist_subset.npz") for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "simclr-tf = simclr_tf_launcher:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert "Requires-Dist: tensorflow-cpu==2.21.0" in zipfile.ZipFile(wheel).read(metadata).decode()
    assert not [n for n in names if n.startswith(("experiments/", "tests/"))]


@pytest.mark.slow
def test_installed_command_pretrains_from_another_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    python = bin_dir / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # This environment's packages, after the venv's own (where the wheel goes).
    with open(os.path.join(site, "borrowed.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
         str(wheel)],
        capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_ENABLE_ONEDNN_OPTS")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    where = subprocess.run([str(python), "-c", "import simclr_tf; print(simclr_tf.__file__)"],
                           cwd=elsewhere, capture_output=True, text=True, env=env, timeout=300)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr[-2000:]
    result = subprocess.run(
        [str(bin_dir / "simclr-tf"), "pretrain", "--config=default", "--output_dir=run", "--epochs=1",
         "--steps_per_epoch=2", "--batch_size=16", "--set", "encoder.stage_widths=[4,8,16,32]",
         "--noprobe"],
        cwd=elsewhere, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = elsewhere / "run"
    assert (out / "encoder.keras").is_file() and (out / "saved_model" / "saved_model.pb").is_file()
    assert len(json.loads((out / "metrics.json").read_text())["history"]["loss"]) == 1
