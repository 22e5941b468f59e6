"""Run-time set-up shared by every chapter: quiet TensorFlow import, versions, seeds, profile,
device.

Explained in chapter 1, section "Setup". Every chapter's setup cell calls :func:`setup`.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import platform
import re
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

PROFILE_VARIABLE = "NORMLAB_PROFILE"
PROFILES = ("full", "smoke", "paper")
# The oldest versions every chapter has been run with; a chapter may ask for more in its setup.
MINIMUM_VERSIONS = {"tensorflow": "2.19", "keras": "3.10"}


def int_argument(name: str, value) -> int:
    """``value`` as a Python int (NumPy integers too, as Keras takes them), else a ValueError naming
    the argument: ``int()`` would silently truncate 1.5 or parse "1", and a bool is no count.
    Here, free of TensorFlow, so that :mod:`normlab.data` checks its counts as the layers do."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return int(value)


def real_argument(name: str, value) -> float:
    """``value`` as a finite float, else a ValueError naming the argument: Keras's ``float()`` takes
    NaN, inf, True and numeric strings, each of which would only fail later, or never."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Profile:
    """How big a run is: ``full`` is the real experiment, ``smoke`` only proves the code runs,
    and ``paper``, where a chapter defines it, runs at the scale of the paper or article it
    repeats (a GPU's work: chapters 5, 6 and 7); elsewhere ``paper`` is ``full``."""

    name: str

    def pick(self, *, full, smoke, paper=None):
        """Return the value meant for this profile, e.g. ``epochs = P.pick(full=10, smoke=1)``."""
        if self.name == "paper" and paper is not None:
            return paper
        return smoke if self.name == "smoke" else full

    def table(self, **rows) -> SimpleNamespace:
        """Each row's value for this profile, from ``name=(full, smoke)`` pairs, or
        ``(full, smoke, paper)`` triples: one table per chapter says what every experiment trains
        under each profile, e.g. ``S = P.table(seeds=([0, 1, 2, 3, 4], [0, 1]), epochs=(10, 2))``,
        then ``S.epochs``."""
        for name, row in rows.items():
            if not (isinstance(row, tuple) and len(row) in (2, 3)):
                raise ValueError(f"row {name!r} must be a (full, smoke) pair or a (full, smoke, "
                                 f"paper) triple, got {row!r}")
        return SimpleNamespace(**{name: self.pick(**dict(zip(("full", "smoke", "paper"), row)))  # noqa: B905
                                  for name, row in rows.items()})

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"


def profile() -> Profile:
    """Read the run profile from ``$NORMLAB_PROFILE`` (default ``full``)."""
    name = os.environ.get(PROFILE_VARIABLE, "").strip().lower() or "full"
    if name not in PROFILES:
        raise ValueError(
            f"{PROFILE_VARIABLE}={name!r} is not a known profile; use one of {', '.join(PROFILES)} "
            "('full' runs the real experiments, 'smoke' runs tiny versions that only prove the "
            "code works, 'paper' runs chapters 5, 6 and 7 at their sources' scale, for a GPU)."
        )
    return Profile(name)


@contextlib.contextmanager
def _stderr_to_devnull():
    """Point file descriptor 2 at /dev/null: TensorFlow's C++ logs bypass ``sys.stderr``."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def import_tensorflow():
    """Import TensorFlow and Keras without start-up noise and return ``(tf, keras)``.

    TensorFlow prints CUDA probing and CPU-feature messages at import and at its first
    operation, straight to file descriptor 2, where ``TF_CPP_MIN_LOG_LEVEL`` does not reach
    all of them. Both happen here, with that descriptor silenced, so later cells stay clean.
    TensorFlow's Python logger is limited to errors: its warnings (e.g. that a loop building
    fresh models traces fresh functions) would print memory addresses into the pages.
    """
    with _stderr_to_devnull():
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.constant(0.0).numpy()
    tf.get_logger().setLevel("ERROR")
    return tf, keras


class VersionError(RuntimeError):
    """TensorFlow or Keras is older than a chapter needs."""


def _version_tuple(version: str) -> tuple[int, ...]:
    """``"3.14.0rc1"`` -> ``(3, 14, 0)``: numeric parts only, enough to compare releases."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("rc")[0])[:3])


def require(installed: dict[str, str] | None = None, **minimum: str) -> None:
    """Stop with one clear sentence when TensorFlow or Keras is older than a chapter needs.

    ``require(keras="3.14")`` checks the installed versions (or those in ``installed``, for
    tests) against ``MINIMUM_VERSIONS`` raised by ``minimum``. On Colab, whose own TensorFlow
    and Keras a chapter keeps, this is where an old image is caught, instead of an obscure
    error deep in a chapter.
    """
    if installed is None:
        tf, keras = import_tensorflow()
        installed = {"tensorflow": tf.__version__, "keras": keras.__version__}
    needed = {**MINIMUM_VERSIONS, **minimum}
    unknown = set(needed) - set(installed)
    if unknown:
        raise ValueError(f"can only check {', '.join(sorted(installed))}, not {', '.join(sorted(unknown))}")
    for package, version in needed.items():
        if _version_tuple(installed[package]) < _version_tuple(version):
            name = {"tensorflow": "TensorFlow", "keras": "Keras"}[package]
            raise VersionError(
                f"This chapter needs {name} {version} or newer, but {name} {installed[package]} is "
                f'installed: upgrade it with `pip install --upgrade "{package}>={version}"` (on Colab, '
                "run that with a leading `!` in a cell, then choose Runtime > Restart session) and "
                "run the chapter again."
            )


def set_seed(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow at once; optionally make TF ops deterministic.

    Deterministic ops make GPU runs repeatable at some cost in speed.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    tf, keras = import_tensorflow()
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def split_cpu(count: int) -> list[str]:
    """Split the processor into ``count`` logical CPU devices and return their names, so that a
    ``tf.distribute.MirroredStrategy(split_cpu(2))`` has two replicas on any machine, with or
    without a GPU. Explained in chapter 9 ("Synchronized batch norm across replicas").

    TensorFlow fixes its devices when its runtime starts, at its first operation, so a chapter
    calls this first in its setup cell, before :func:`setup` and before importing the normlab
    modules that use TensorFlow at import (``layers``, ``models``, ``probes``, ``train``).
    Calling it again with the same count changes nothing. Where the runtime has already started
    with another number of CPU devices (an IPython start-up file that ran TensorFlow, or such a
    module imported first), the eager runtime is restarted with the split: tensors and variables
    made before belong to the old runtime and must not be used afterwards.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    with _stderr_to_devnull():
        import tensorflow as tf
        from tensorflow.python.eager import context

        cpu = tf.config.list_physical_devices("CPU")[0]
        split = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        try:
            tf.config.set_logical_device_configuration(cpu, split)
        except RuntimeError:  # the runtime has started, with its devices fixed
            if len(tf.config.list_logical_devices("CPU")) != count:
                context._reset_context()  # TensorFlow's own tests restart it this way
                tf.config.set_logical_device_configuration(cpu, split)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]  # starts it
    if len(devices) != count:
        raise RuntimeError(f"asked for {count} logical CPU devices, TensorFlow made {devices}")
    return devices


@contextlib.contextmanager
def quiet():
    """Silence TensorFlow's C++ log lines inside a ``with`` block. Explained in chapter 9.

    Some of TensorFlow's run-time notices go straight to file descriptor 2, once per process or
    once per traced function: on the first input distributed over replicas ("Memory patch
    applied", "GeneratorDatasetOp ... will not be optimized"), or on a graph in float64 ("Not
    handling type DT_DOUBLE"). They carry a timestamp, so a page that showed them would change at
    every run. Python's own warnings and errors still show in Jupyter, where ``sys.stderr`` is not
    that descriptor.
    """
    with _stderr_to_devnull():
        yield


def on_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def device_summary() -> str:
    """One line naming the framework versions and the device the chapter runs on."""
    tf, keras = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    device = f"{len(gpus)} GPU(s)" if gpus else f"CPU only ({os.cpu_count()} cores)"
    return f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {device}"


def machine_summary() -> str:
    """The processor and core count, so that a timing can say which machine it was measured on."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo
                         if line.startswith("model name")), name)
    return f"{name}, {os.cpu_count()} cores"


def hardware() -> str:
    """The processor and the GPUs TensorFlow sees: what a run or a timing was made on."""
    tf, _ = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
    return machine_summary() + "".join(f", {name}" for name in names)


def setup(seed: int = 0, *, tf32: bool = False, **minimum_versions: str):
    """The whole setup of a chapter in one call; returns ``(tf, keras, profile)``.

    Imports TensorFlow quietly, checks versions (:func:`require`; ``setup(0, keras="3.14")`` for
    a chapter that needs Keras 3.14), seeds everything, applies the book's figure style and prints
    one line on profile and device. TensorFloat-32, which recent NVIDIA GPUs use by default for
    ``float32`` matrix products and convolutions (10 bits of mantissa), is switched off so that
    ``float32`` comparisons stay tight; a chapter that only trains passes ``tf32=True`` for speed.
    Explained in chapter 2 ("TensorFloat-32"). On a CPU it changes nothing.
    """
    from normlab import plots

    active = profile()
    tf, keras = import_tensorflow()
    require(**minimum_versions)
    tf.config.experimental.enable_tensor_float_32_execution(tf32)
    set_seed(seed)
    plots.use_style()
    print(f"profile: {active.name} | {device_summary()}")
    if on_colab() and not tf.config.list_physical_devices("GPU"):
        print("No GPU in this Colab runtime: choose Runtime > Change runtime type > GPU, then rerun.")
    return tf, keras, active
