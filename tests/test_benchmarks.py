"""The benchmark scripts run and report a ratio (their timings are read by people, not asserted)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bn_step_benchmark_prints_the_ratio():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bn_step.py"), "--batch", "4", "--size", "4",
         "--channels", "2", "--steps", "1", "--rounds", "1"],
        capture_output=True, text=True, check=True)
    assert "keras.layers.BatchNormalization" in result.stdout
    assert "ratio fused / keras: " in result.stdout and result.stderr == ""


def test_lenet_epoch_benchmark_prints_the_ratio():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "lenet_epoch.py"), "--dataset", "fashion_mnist",
         "--n-train", "512", "--rounds", "1"],
        capture_output=True, text=True, check=True)
    assert "model.fit(numpy arrays)" in result.stdout and "on 512 Fashion-MNIST images" in result.stdout
    assert "ratio pipeline / numpy: " in result.stdout and result.stderr == ""
