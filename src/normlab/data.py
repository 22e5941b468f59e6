"""Datasets for the chapters, loaded through ``keras.datasets`` or an offline copy.

Explained in chapter 1, section "Setup". CIFAR-10 is the book's default, as in the source
articles; where it cannot be downloaded, Fashion-MNIST is read from the Debian package
``dataset-fashion-mnist`` (the same files Keras downloads), so every chapter also runs offline.
The page always prints which dataset ran.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import socket
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from normlab.runtime import import_tensorflow

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
NAMES = ("default", "cifar10", "fashion_mnist")
TITLES = {"cifar10": "CIFAR-10", "fashion_mnist": "Fashion-MNIST"}
CLASS_NAMES = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
    "fashion_mnist": ("T-shirt/top", "trouser", "pullover", "dress", "coat",
                      "sandal", "shirt", "sneaker", "bag", "ankle boot"),
}
_FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class DatasetUnavailableError(RuntimeError):
    """A dataset could neither be read from disk nor downloaded."""


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 ``(N, H, W, C)`` arrays and labels as int ``(N,)`` arrays."""

    key: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    note: str = ""

    @property
    def title(self) -> str:
        return TITLES[self.key]

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES[self.key]

    def describe(self) -> str:
        """One line for the page: which data ran, from where, and how much of it."""
        h, w, c = self.x_train.shape[1:]
        text = (f"dataset: {self.title} ({self.source}), {len(self.x_train):,} train / "
                f"{len(self.x_test):,} test images of {h}x{w}x{c}, {len(self.class_names)} classes")
        return f"{text}\n{self.note}" if self.note else text

    def subsample(self, n_train: int, n_test: int | None = None, seed: int = 0) -> Dataset:
        """A random subset, e.g. for the ``smoke`` profile; ``None`` keeps a split whole."""
        rng = np.random.default_rng(seed)

        def pick(x, y, n):
            if n is None or n >= len(x):
                return x, y
            if n < 1:
                raise ValueError(f"subsample size must be at least 1, got {n}")
            idx = np.sort(rng.choice(len(x), size=n, replace=False))
            return x[idx], y[idx]

        x_train, y_train = pick(self.x_train, self.y_train, n_train)
        x_test, y_test = pick(self.x_test, self.y_test, n_test)
        return replace(self, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def load(name: str = "default", *, fashion_mnist_dir: Path | str = DEBIAN_FASHION_MNIST_DIR
         ) -> Dataset:
    """Load ``"cifar10"``, ``"fashion_mnist"`` or ``"default"`` (CIFAR-10, else Fashion-MNIST)."""
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    if name == "fashion_mnist":
        return _load_fashion_mnist(Path(fashion_mnist_dir))
    if name == "cifar10":
        return _load_cifar10()
    try:
        return _load_cifar10()
    except DatasetUnavailableError:
        fallback = _load_fashion_mnist(Path(fashion_mnist_dir))
        note = ("CIFAR-10 could not be downloaded here, so this run uses Fashion-MNIST; "
                "numbers quoted from the source articles refer to CIFAR-10.")
        return replace(fallback, note=note)


def pipeline(x, y, batch_size: int, *, shuffle_seed: int | None = None):
    """A ``tf.data`` pipeline over in-memory images: shuffled when given a seed, batched, float32.

    Explained in chapter 5. Training data is reshuffled every epoch and cast batch by batch, so
    the uint8 arrays are never copied whole; evaluation data (no seed) is cast once and cached.
    Batches are prefetched, so the next one is ready while the model trains on this one.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    tf, _ = import_tensorflow()
    batches = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        batches = batches.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    batches = batches.batch(batch_size).map(lambda images, labels: (tf.cast(images, "float32"), labels),
                                            num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle_seed is None:
        batches = batches.cache()
    return batches.prefetch(tf.data.AUTOTUNE)


def _load_cifar10() -> Dataset:
    _, keras = import_tensorflow()
    (x_train, y_train), (x_test, y_test) = _through_keras(keras.datasets.cifar10.load_data,
                                                          "cifar10")
    return Dataset("cifar10", x_train, y_train.ravel().astype(np.int64), x_test,
                   y_test.ravel().astype(np.int64), source="keras.datasets")


def _load_fashion_mnist(directory: Path) -> Dataset:
    paths = [directory / f for f in _FASHION_FILES]
    if all(p.is_file() for p in paths):
        x_train, y_train, x_test, y_test = (_read_idx(p) for p in paths)
        source = "offline copy from the Debian package dataset-fashion-mnist"
    else:
        _, keras = import_tensorflow()
        (x_train, y_train), (x_test, y_test) = _through_keras(
            keras.datasets.fashion_mnist.load_data, "fashion_mnist")
        source = "keras.datasets"
    return Dataset("fashion_mnist", x_train[..., None], y_train.astype(np.int64),
                   x_test[..., None], y_test.astype(np.int64), source=source)


def _read_idx(path: Path) -> np.ndarray:
    """Read one gzip IDX file (the MNIST family's format): magic, sizes, then raw uint8."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path.name} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _through_keras(loader, key: str):
    """Call a ``keras.datasets`` loader quietly; turn any failure into one clear paragraph."""
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return loader()
    except Exception as error:  # urllib, tarfile, hash mismatch ... all mean "not available"
        offline = ("Fashion-MNIST works offline once the Debian package is installed "
                   "(`apt-get install dataset-fashion-mnist`)")
        raise DatasetUnavailableError(
            f"Could not load {TITLES[key]}: keras.datasets.{key}.load_data() failed with "
            f"{type(error).__name__}: {error}. Keras downloads the dataset on first use into "
            "~/.keras/datasets, so this usually means the machine is offline or the download "
            "was interrupted. To fix it, connect to the internet and run again (delete a "
            f"half-downloaded file in ~/.keras/datasets first), or load the other dataset: "
            f"{offline}."
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
