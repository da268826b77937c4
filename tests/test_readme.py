"""Every code block of README.md runs in a test.

Python blocks run in order in one fresh process (they build on each other),
in a folder holding a `photos/` folder of real photo crops. Bash blocks are
the two commands and the own-images command: the test command must be what
`.ci/run` runs, the own-images command runs here on generated folders (with
flags that shorten it), and the main command is the installed command with
no flags (`test_cli_wheel.py` installs the wheel and runs `simclr-tf
pretrain`; `test_pretrain.py` runs the default job in a short mode).
"""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.photo_folder import make_photo_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = "python3.11 -m venv .venv && . .venv/bin/activate && pip install . && simclr-tf pretrain"
TESTS = ("python3.11 -m venv .venv && . .venv/bin/activate && pip install -q -r requirements-dev.txt "
         "&& python -m pytest -q -n 2")
SHORT = ["--epochs=1", "--steps_per_epoch=2", "--batch_size=16", "--set", "encoder.stage_widths=[4,8,16,32]",
         "--set", "probe.max_iterations=5"]
ENV = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(r"```(\w*)\n(.*?)```", f.read(), flags=re.S)


def _code(language):
    return [code for lang, code in _blocks() if lang == language]


def test_readme_is_a_short_product_page():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert len(f.read()) <= 8000


def test_every_block_is_checked_here():
    # A block in another language, or a bash block not listed, would go untested.
    assert {lang for lang, _ in _blocks()} == {"python", "bash"}
    bash = [code.strip() for code in _code("bash")]
    assert bash[:2] == [MAIN, TESTS]
    assert len(bash) == 3 and bash[2].startswith("simclr-tf pretrain --dataset=folder:photos")


def test_the_test_command_is_what_ci_runs():
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert TESTS in f.read()


def test_the_onednn_line_sets_the_variable_for_tensorflow():
    (block,) = [code for code in _code("python") if "TF_ENABLE_ONEDNN_OPTS" in code]
    env = {k: v for k, v in ENV.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run([sys.executable, "-c", block + "print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "1", result.stderr


@pytest.mark.slow
def test_python_blocks_run_in_order(tmp_path):
    make_photo_folder(tmp_path / "photos", labelled=False, unreadable=False)
    code = "\n".join(code for code in _code("python") if "TF_ENABLE_ONEDNN_OPTS" not in code)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=900, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "export" / "simclr" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_own_images_command_runs(tmp_path):
    make_photo_folder(tmp_path / "photos", labelled=False)
    for split, seed in (("train", 1), ("test", 2)):
        make_photo_folder(tmp_path / "labelled" / split, per_source=3, seed=seed, unreadable=False)
    (command,) = [code.strip() for code in _code("bash") if "folder:photos" in code]
    args = shlex.split(command)
    assert args[:2] == ["simclr-tf", "pretrain"]
    result = subprocess.run(
        [sys.executable, "-m", "simclr_tf_launcher", *args[1:], *SHORT, "--output_dir=run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["image_size"] == 64
    assert metrics["eval_dataset"] == "folder:labelled"
    for key in ("probe_top1_learned", "knn_top1_learned", "probe_top1_pixels", "probe_top1_random"):
        assert 0.0 <= metrics[key] <= 1.0
    # Three labels a class are too few for the 1% report: one line says so.
    assert "Skipped the label-efficiency report" in result.stdout
